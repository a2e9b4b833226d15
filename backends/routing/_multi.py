"""Multi-round routing (the Router-R1 idea): ask several backends, then aggregate."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncGenerator, Sequence

from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk, Timings, Usage
from plait.errors import ConfigError, ModelOutputError

from .._base import Backend
from ._costs import CostLedger
from ._router import Route, Router

__all__ = ["MultiRoundRouter"]

_JUDGE_PROMPT = (
    "Several assistants answered the same request. Pick the best answer.\n\n"
    "Request:\n{request}\n\n{answers}\n\nReply with JSON: the number of the best answer."
)


def _normalize(text: str) -> str:
    return " ".join(text.split()).strip().rstrip(".").lower()


class MultiRoundRouter(Router):
    """Asks backends in rounds until a majority agrees, then answers with that answer.

    Round one asks the first ``quorum`` backends; each later round asks one more,
    until some answer (compared after normalising whitespace, case and a final
    period) has a strict majority of the answers so far. With no majority after
    every backend, the ``judge`` picks among the answers (without one, the first
    backend's answer stands). Usage and cost are the sum over every call, each
    of which also appears in the decisions log.

    Args:
        backends: backends to ask, cheapest first.
        quorum: how many to ask in the first round (at least 1).
        judge: a backend that picks the best answer when they disagree.
        name: router name.
        ledger: cost accounting and caps.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        quorum: int = 2,
        judge: Backend | None = None,
        name: str = "multi-round",
        ledger: CostLedger | None = None,
    ) -> None:
        super().__init__(name=name, ledger=ledger)
        if not backends or not 1 <= quorum <= len(backends):
            raise ConfigError("MultiRoundRouter needs backends and 1 <= quorum <= len(backends)")
        self.members = tuple(backends)
        self.quorum = quorum
        self.judge = judge

    def backends(self) -> Sequence[Backend]:
        return [*self.members, *([self.judge] if self.judge else [])]

    async def choose(self, request: ChatRequest) -> Route:
        return Route(self.members[0], "first member of the panel")

    async def _ask(self, backend: Backend, request: ChatRequest, reason: str) -> Completion:
        route = Route(backend, reason)
        final: Completion | None = None
        async for chunk in self.serve(request, backend, route, reason, ()):
            if chunk.completion is not None:
                final = chunk.completion
        assert final is not None  # serve() only ends normally after a final chunk
        return final

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        answers: list[tuple[Backend, Completion]] = []
        usage, total_s = Usage(), 0.0
        winner: Completion | None = None
        for index, backend in enumerate(self.members):
            round_no = 1 if index < self.quorum else index - self.quorum + 2
            completion = await self._ask(backend, request, f"panel round {round_no}")
            answers.append((backend, completion))
            usage, total_s = usage + completion.usage, total_s + completion.timings.total_s
            if index + 1 < self.quorum:
                continue
            votes = Counter(_normalize(c.text) for _, c in answers)
            text, count = votes.most_common(1)[0]
            if count * 2 > len(answers):
                winner = next(c for _, c in answers if _normalize(c.text) == text)
                break
        if winner is None:
            winner = answers[0][1]
            if self.judge is not None:
                judged, judge_usage = await self._judge(request, answers)
                usage = usage + judge_usage
                winner = judged or winner
        yield StreamChunk(delta=winner.text)
        yield StreamChunk(
            completion=winner.model_copy(
                update={"usage": usage, "timings": Timings(total_s=total_s)}
            )
        )

    async def _judge(
        self, request: ChatRequest, answers: list[tuple[Backend, Completion]]
    ) -> tuple[Completion | None, Usage]:
        assert self.judge is not None
        text = getattr(request.messages[-1], "content", None) or ""
        listing = "\n".join(f"Answer {i + 1}:\n{c.text}" for i, (_, c) in enumerate(answers))
        ask = ChatRequest.from_prompt(
            _JUDGE_PROMPT.format(request=text[:2000], answers=listing),
            response_schema={
                "type": "object",
                "properties": {"best": {"enum": list(range(1, len(answers) + 1))}},
                "required": ["best"],
            },
            max_tokens=16,
            temperature=0.0,
            agent=request.agent,
            priority=request.priority,  # the judge gates the request's answer
        )
        verdict = await self._ask(self.judge, ask, "judge between disagreeing answers")
        try:
            best = int(verdict.parse_json()["best"])
            return answers[best - 1][1], verdict.usage
        except (
            ModelOutputError,
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            json.JSONDecodeError,
        ):
            return None, verdict.usage
