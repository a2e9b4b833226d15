"""RouteLLM-style routing: a difficulty score against a calibrated threshold."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from plait.chat import ChatRequest
from plait.errors import ConfigError

from .._base import Backend
from ._complexity import ComplexityScorer, Scorer
from ._costs import CostLedger
from ._router import Route, Router

__all__ = ["Calibration", "ThresholdRouter"]


class Calibration(BaseModel):
    """What :meth:`ThresholdRouter.calibrate` chose and what it achieves on the samples."""

    model_config = ConfigDict(frozen=True)

    threshold: float
    target_strong_share: float
    strong_share: float
    samples: int


class ThresholdRouter(Router):
    """Sends a request to ``strong`` when its score reaches ``threshold``, else to ``cheap``.

    As in RouteLLM, the threshold is the knob between cost and quality: pick it
    with :meth:`calibrate` for the share of requests you can afford to send to
    the strong model. When a ledger says the strong call would pass the budget,
    the request goes to the cheap backend instead (and the decision says so).

    Args:
        cheap: the inexpensive backend (often local).
        strong: the capable, expensive backend.
        scorer: difficulty scorer (default :class:`ComplexityScorer`).
        threshold: scores at or above it go to ``strong``.
        name: router name.
        ledger: cost accounting and caps.
    """

    def __init__(
        self,
        cheap: Backend,
        strong: Backend,
        *,
        scorer: Scorer | None = None,
        threshold: float = 0.5,
        name: str = "threshold",
        ledger: CostLedger | None = None,
    ) -> None:
        super().__init__(name=name, ledger=ledger)
        _check_threshold(threshold)
        self.cheap = cheap
        self.strong = strong
        self.scorer: Scorer = scorer or ComplexityScorer()
        self.threshold = threshold

    def backends(self) -> Sequence[Backend]:
        return [self.cheap, self.strong]

    async def choose(self, request: ChatRequest) -> Route:
        score = await self.scorer.score(request)
        if score >= self.threshold:
            reason = f"score {score:.3f} >= threshold {self.threshold:.3f}: strong backend"
            return Route(self.strong, reason, score, self.threshold, cheaper=(self.cheap,))
        reason = f"score {score:.3f} < threshold {self.threshold:.3f}: cheap backend"
        return Route(self.cheap, reason, score, self.threshold)

    async def calibrate(self, samples: Sequence[ChatRequest], strong_share: float) -> Calibration:
        """Set the threshold so about ``strong_share`` of ``samples`` go to the strong backend.

        The threshold becomes the score of the k-th hardest sample (k =
        round(share * n)); tied scores can make the achieved share differ, and
        the result reports the share actually achieved on the samples.

        Raises:
            ConfigError: no samples, or a share outside [0, 1].
        """
        if not samples:
            raise ConfigError("calibrate() needs at least one sample request")
        if not 0.0 <= strong_share <= 1.0:
            raise ConfigError(f"strong_share must be within [0, 1], got {strong_share}")
        scores = sorted([await self.scorer.score(r) for r in samples], reverse=True)
        k = round(strong_share * len(scores))
        # k == 0: just above the hardest sample, so none of them goes to the strong backend.
        self.threshold = math.nextafter(scores[0], math.inf) if k == 0 else scores[k - 1]
        achieved = sum(s >= self.threshold for s in scores) / len(scores)
        return Calibration(
            threshold=self.threshold,
            target_strong_share=strong_share,
            strong_share=achieved,
            samples=len(scores),
        )


def _check_threshold(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"threshold must be within [0, 1], got {value}")
