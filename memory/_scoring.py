"""Retrieval score: similarity + recency + importance, with configurable weights."""

from __future__ import annotations

from dataclasses import dataclass

from plait.errors import ConfigError

from ._records import MemoryRecord, RecalledMemory, Trust

__all__ = ["ScoreWeights"]


@dataclass(frozen=True)
class ScoreWeights:
    """How recall ranks records (Generative Agents-style weighted sum).

    ``score = similarity * w_sim + recency * w_rec + importance * w_imp`` minus
    the low-trust penalty for low-trust records, where
    ``recency = 0.5 ** (age / half_life)``.

    Attributes:
        similarity: weight of cosine similarity to the query.
        recency: weight of recency.
        importance: weight of the record's importance.
        half_life_s: age (seconds) at which recency halves.
        low_trust_penalty: subtracted from the score of low-trust records. Scoring is
            trust-blind by default; :class:`MemoryGuard` sets its own penalty.
    """

    similarity: float = 1.0
    recency: float = 0.1
    importance: float = 0.1
    half_life_s: float = 7 * 24 * 3600.0
    low_trust_penalty: float = 0.0

    def __post_init__(self) -> None:
        for name in ("similarity", "recency", "importance", "low_trust_penalty"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ScoreWeights.{name} must be >= 0, got {getattr(self, name)}")
        if self.half_life_s <= 0:
            raise ConfigError(f"ScoreWeights.half_life_s must be > 0, got {self.half_life_s}")

    def score(self, record: MemoryRecord, similarity: float, now: float) -> RecalledMemory:
        """Score one record found with ``similarity`` at time ``now``."""
        age = max(0.0, now - record.provenance.created_at)
        recency = 0.5 ** (age / self.half_life_s)
        total = (
            self.similarity * similarity
            + self.recency * recency
            + self.importance * record.importance
        )
        if record.provenance.trust.rank >= Trust.LOW.rank:
            total -= self.low_trust_penalty
        return RecalledMemory(record=record, similarity=similarity, recency=recency, score=total)
