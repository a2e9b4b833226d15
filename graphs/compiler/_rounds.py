"""The planner loop's rounds: the public results and the records a run keeps.

A run of the loop keeps one :class:`RoundRecord` per round in its result store
(scope: the run id), written as the round goes: once its plan is known (or,
for a streamed text plan, before the stream starts), when it pauses for
approval, when a reviewer decides and once the joiner has answered. A resumed
run reads the records back and goes on from the last one, so a round with a
plan is never planned again and a joined round is never joined again. The
records are read and validated here and nowhere else.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from plait.completions import Usage
from plait.errors import ConfigError
from plait.provenance import Source, untrusted
from plait.tools import SelectionDecision

from ..dag import Approval, Plan, ResultStore, RunResult

__all__ = ["CompilerResult", "Joined", "Round", "RoundLog", "RoundRecord"]

# Store names under the run id: the run's header, and one record per round.
_HEADER = "planner"
_ROUND = "round:{number}"


class Round(BaseModel):
    """One plan-execute-join round."""

    model_config = ConfigDict(frozen=True)

    plan: Plan
    run: RunResult
    action: Literal["finish", "replan"]
    answer: str
    usage: Usage
    sources: frozenset[Source] = frozenset()
    template: str | None = None
    selection: SelectionDecision | None = None


class CompilerResult(BaseModel):
    """The final answer and every round that led to it.

    Attributes:
        answer: the joiner's last answer ("" while the first round is paused).
        finished: the joiner chose to finish.
        rounds: every completed round.
        run_id: continue a paused run with :meth:`LLMCompiler.aresume`.
        awaiting: when the run is paused for approval, the approval requests
            (each lists the flagged tasks with their resolved arguments).

    A :class:`Round`'s ``sources`` are what its answer rests on: the question
    and every result the joiner read or placed in the answer; ``template`` is
    the joiner's own text before ``$n`` references were filled in
    (plan-then-execute mode).
    """

    model_config = ConfigDict(frozen=True)

    answer: str
    finished: bool
    rounds: tuple[Round, ...]
    run_id: str = ""
    awaiting: tuple[dict[str, Any], ...] = ()

    @property
    def usage(self) -> Usage:
        return sum((r.usage for r in self.rounds), Usage())

    @property
    def sources(self) -> frozenset[Source]:
        """What the final answer rests on."""
        return self.rounds[-1].sources if self.rounds else frozenset()

    @property
    def untrusted_sources(self) -> list[Source]:
        """The untrusted sources that contributed to the final answer."""
        return untrusted(self.sources)


class Joined(BaseModel):
    """The joiner's decision on a round, and the execution it read.

    Attributes:
        usage: the joiner's own usage.
        template: the joiner's text before ``$n`` references were filled in
            (plan-then-execute mode).
    """

    model_config = ConfigDict(frozen=True)

    run: RunResult
    action: Literal["finish", "replan"]
    answer: str
    usage: Usage
    sources: frozenset[Source] = frozenset()
    template: str | None = None


class RoundRecord(BaseModel):
    """What one round of a run has done so far.

    Attributes:
        number: the round's number, from 1.
        exec_id: the executor run id its plan runs under (``<run_id>-<number>``;
            a text plan planned again after a crash cut its stream gets
            ``<run_id>-<number>.<attempt>``, so no stored result is taken for
            a different task).
        planning_attempts: text plans whose stream was started.
        plan: the plan (``None`` until it is known).
        usage: the planner's usage.
        selection: which tools the planner was shown, and why.
        decisions: reviewers' decisions on its flagged tasks, by task id.
        asked: while the round is paused, the approval request it is waiting on.
        joined: the joiner's decision, once made.
    """

    model_config = ConfigDict(frozen=True)

    number: int
    exec_id: str
    planning_attempts: int = 0
    plan: Plan | None = None
    usage: Usage = Usage()
    selection: SelectionDecision | None = None
    decisions: dict[str, Approval] = {}
    asked: dict[str, Any] | None = None
    joined: Joined | None = None

    def round(self) -> Round:
        """The finished round (the record must be joined)."""
        assert self.plan is not None and self.joined is not None, "the round is not joined yet"
        joined = self.joined
        return Round(
            plan=self.plan,
            run=joined.run,
            action=joined.action,
            answer=joined.answer,
            usage=self.usage + joined.usage,
            sources=joined.sources,
            template=joined.template,
            selection=self.selection,
        )


class RoundLog:
    """A planner run's question and round records in a result store.

    Args:
        store: the run's result store.
        run_id: the run's id (the scope of its records).
    """

    __slots__ = ("run_id", "store")

    def __init__(self, store: ResultStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    async def question(self) -> str | None:
        """The question the run answers (``None``: no run with this id was started)."""
        found, header = await self.store.load_value(self.run_id, _HEADER)
        if not found:
            return None
        try:
            return str(header["question"])
        except (KeyError, TypeError) as e:
            raise self._unreadable(_HEADER, e) from e

    async def start(self, question: str) -> None:
        """Record that the run answers ``question``."""
        await self.store.save_value(self.run_id, _HEADER, {"question": question})

    async def rounds(self) -> list[RoundRecord]:
        """Every round recorded so far, in order."""
        records: list[RoundRecord] = []
        while True:
            name = _ROUND.format(number=len(records) + 1)
            found, body = await self.store.load_value(self.run_id, name)
            if not found:
                return records
            try:
                records.append(RoundRecord.model_validate(body))
            except ValidationError as e:
                raise self._unreadable(name, e) from e

    async def save(self, record: RoundRecord) -> None:
        """Record (or replace) ``record`` before the loop goes on."""
        name = _ROUND.format(number=record.number)
        await self.store.save_value(self.run_id, name, record.model_dump(mode="json"))

    def _unreadable(self, name: str, error: Exception) -> ConfigError:
        return ConfigError(
            f"the planner run {self.run_id!r} cannot be resumed: its record {name!r} is"
            f" unreadable ({type(error).__name__}: {error})"
        )
