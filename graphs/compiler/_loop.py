"""The planner loop: plan -> execute -> join -> finish or replan, as plain async code.

A :class:`PlannerRun` is one run of the loop over its own result store. Every
step is recorded in the round's :class:`~._rounds.RoundRecord` before the loop
goes on, so a run started again with the same id (after a crash, or to resume
a pause) reads its records and continues: a round with a plan is not planned
again, its finished tasks are restored by the executor instead of run again,
and a joined round is not joined again.

Approval uses the executor's own hold: a flagged task without a decision is
held, the round records the request and the run returns it (``awaiting``);
:meth:`PlannerRun.answer` stores the reviewer's decisions in the record and
the loop goes on. Nothing here catches LangGraph's control flow: an
``interrupt()`` raised inside a task leaves the round's record as it was (its
plan stored) and reaches the caller as itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from plait import tracing
from plait.errors import ConfigError, PlanError
from plait.provenance import USER, Source

from ..dag import EagerExecutor, RunResult
from ._approval import approval_request, asked_tasks, parse_answer
from ._joining import join, shown_sources
from ._planning import plan_attributes
from ._rounds import CompilerResult, RoundLog, RoundRecord

if TYPE_CHECKING:
    from ._compiler import LLMCompiler

__all__ = ["PlannerRun", "refuse_legacy"]


class PlannerRun:
    """One run of the planner loop: its question, executor and round records.

    Build it with :meth:`open`; it lives as long as the call that drives it
    (a paused run without a durable store is kept by its compiler until it
    ends).

    Args:
        compiler: the loop's settings (planner, joiner, tools, limits, mode).
        run_id: the run's id (the scope of its records and idempotency keys).
        question: what the run answers.
        executor: runs the plans, persisting into the run's store.
        log: the run's records in that store.
        records: the rounds recorded so far.
    """

    def __init__(
        self,
        compiler: LLMCompiler,
        run_id: str,
        question: str,
        executor: EagerExecutor,
        log: RoundLog,
        records: list[RoundRecord],
    ) -> None:
        self.compiler = compiler
        self.run_id = run_id
        self.question = question
        self.executor = executor
        self.log = log
        self.records = records

    @classmethod
    async def open(
        cls,
        compiler: LLMCompiler,
        run_id: str,
        executor: EagerExecutor,
        question: str | None,
        legacy: Path | None = None,
    ) -> PlannerRun:
        """The run ``run_id`` in ``executor``'s store: read back, or started with ``question``.

        Args:
            legacy: where an older version kept this run's loop (LangGraph
                checkpoints); a run found only there is refused, not started again.

        Raises:
            ConfigError: the run exists only in ``legacy``.
            PlanError: no run with this id was started and no question is given.
        """
        log = RoundLog(executor.store, run_id)
        stored = await log.question()
        if stored is None:
            if legacy is not None:
                refuse_legacy(legacy)
            if question is None:
                raise PlanError(f"no planner run with id {run_id!r} was started")
            await log.start(question)
            return cls(compiler, run_id, question, executor, log, [])
        return cls(compiler, run_id, stored, executor, log, await log.rounds())

    @property
    def ended(self) -> bool:
        """The joiner finished, or no replan is left."""
        last = self.records[-1].joined if self.records else None
        if last is None:
            return False
        return last.action == "finish" or len(self.records) > self.compiler.max_replans

    @property
    def paused(self) -> bool:
        """The open round waits for a reviewer."""
        return bool(self.records and self.records[-1].asked)

    async def run(self) -> CompilerResult:
        """Go on until the run ends or pauses for approval."""
        while not self.ended:
            record = await self.advance()
            if record.asked:
                break
        return self.result()

    async def round(self, number: int) -> RoundRecord:
        """Round ``number``: as recorded when it is joined, else brought as far as it goes."""
        if number <= len(self.records) and self.records[number - 1].joined is not None:
            return self.records[number - 1]
        if number != len(self.records) + (0 if self._open() else 1):
            raise PlanError(f"round {number} of run {self.run_id!r} is not the next one")
        return await self.advance()

    async def answer(self, answer: Any, request: dict[str, Any] | None = None) -> None:
        """Store a reviewer's ``answer`` to ``request`` (default: the one the run waits on).

        Raises:
            PlanError: the run is not waiting for approval, or the answer does not fit.
        """
        record = self._open()
        asked = request or (record.asked if record is not None else None)
        if record is None or not asked:
            raise PlanError(f"the planner run {self.run_id!r} is not waiting for approval")
        decisions = parse_answer(answer, asked_tasks(asked))
        await self._save(record.model_copy(update={"decisions": {**record.decisions, **decisions}}))

    async def advance(self) -> RoundRecord:
        """Bring the open round (or a new one) to its join, or to a pause for approval."""
        record = self._open()
        if record is None:
            number = len(self.records) + 1
            record = RoundRecord(number=number, exec_id=f"{self.run_id}-{number}")
            self.records.append(record)
        round_span = {"plait.run_id": f"{self.run_id}-{record.number}"}
        with tracing.span("plait.round", round_span) as span:
            # The plan's literal arguments come from what the planner read: the
            # question, and every earlier result it was shown.
            sources = frozenset({USER}).union(
                *(
                    shown_sources(r.joined.run, quarantine=self.compiler.quarantine)
                    for r in self.records[:-1]
                    if r.joined is not None
                )
            )
            run: RunResult | None = None
            if record.plan is None:
                record, run = await self._plan(record, sources, span)
            if run is None:
                assert record.plan is not None
                run = await self.executor.run(
                    record.plan,
                    run_id=record.exec_id,
                    known_tools=self.compiler.tools,
                    approvals=record.decisions,
                    scope=self.run_id,
                    sources=sources,
                )
            if run.awaiting:
                request = approval_request(run, self.run_id, record.number)
                return await self._save(record.model_copy(update={"asked": request}))
            assert record.plan is not None
            joined = await join(
                self.compiler.joiner,
                self.question,
                record.plan,
                run,
                quarantine=self.compiler.quarantine,
            )
        return await self._save(record.model_copy(update={"asked": None, "joined": joined}))

    def result(self) -> CompilerResult:
        """The run as it stands: its joined rounds, and the request it waits on."""
        rounds = tuple(r.round() for r in self.records if r.joined is not None)
        open_ = self._open()
        awaiting = (open_.asked,) if open_ is not None and open_.asked else ()
        last = rounds[-1] if rounds else None
        return CompilerResult(
            answer=last.answer if last else "",
            finished=bool(last and last.action == "finish" and not awaiting),
            rounds=rounds,
            run_id=self.run_id,
            awaiting=awaiting,
        )

    async def _plan(
        self, record: RoundRecord, sources: frozenset[Source], span: Any
    ) -> tuple[RoundRecord, RunResult | None]:
        """Plan the round (a text plan also runs while it streams); the record with its plan."""
        writer = self.compiler.writer
        tools, selection = await writer.tools_for(self.question)
        if selection is not None:
            span.set_attributes(
                {
                    "plait.tool_selection.policy": selection.policy,
                    "plait.tool_selection.offered": list(selection.offered),
                }
            )
        history = [
            (r.plan, r.joined.run, r.joined.template or r.joined.answer)
            for r in self.records
            if r.plan is not None and r.joined is not None
        ]
        request = writer.request(tools, self.question, history)
        run: RunResult | None = None
        if writer.plan_format == "json":
            plan, usage = await writer.json_plan(request, self.question)
        else:
            # A stream cut off by a crash left a partial plan under the round's
            # executor id: a new attempt gets its own id, so that no stored
            # result is mistaken for a different task's.
            attempt = record.planning_attempts + 1
            base_id = f"{self.run_id}-{record.number}"
            record = await self._save(
                record.model_copy(
                    update={
                        "planning_attempts": attempt,
                        "exec_id": base_id if attempt == 1 else f"{base_id}.{attempt}",
                    }
                )
            )
            plan, run, usage = await writer.streamed_plan_and_run(
                request,
                self.executor,
                record.exec_id,
                approvals=record.decisions,
                scope=self.run_id,
                sources=sources,
            )
            span.set_attributes(plan_attributes(plan, usage))
        record = record.model_copy(update={"plan": plan, "usage": usage, "selection": selection})
        return await self._save(record), run

    def _open(self) -> RoundRecord | None:
        """The round not joined yet, if any."""
        if self.records and self.records[-1].joined is None:
            return self.records[-1]
        return None

    async def _save(self, record: RoundRecord) -> RoundRecord:
        await self.log.save(record)
        self.records[record.number - 1] = record
        return record


def refuse_legacy(checkpoints: Path) -> None:
    """Refuse a run that an older version kept in LangGraph checkpoints (``checkpoints``).

    Raises:
        ConfigError: the file exists; it names the file and what to do.
    """
    if checkpoints.exists():
        raise ConfigError(
            f"the run's checkpoints {checkpoints} cannot be used: they were written by an"
            " older version of plait, whose planner loop this one does not read (it keeps"
            " its rounds in results.sqlite); remove the run's folder to start the run again"
        )
