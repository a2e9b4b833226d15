"""Human approval of flagged tasks through LangGraph interrupts.

Inside a LangGraph node, a plan runs until every task it can run has ended and
only tasks flagged ``requires_approval`` (and their dependants) are left. The
node then calls :func:`langgraph.types.interrupt` once with all of them; the
graph pauses and is continued with ``Command(resume=answer)``.

LangGraph re-executes the node from its start after each resume and matches
interrupts to answers by their order. So decisions are stored durably (with the
number of answers used), answered interrupts are replayed first, and finished
tasks come back from the result store instead of running again.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

from langgraph.types import interrupt
from pydantic import ValidationError

from plait.errors import PlanError
from plait.provenance import Source

from ..dag import Approval, EagerExecutor, Plan, RunResult, Task

__all__ = ["ApprovalGate", "parse_answer"]

_DECISIONS = "approvals"


class ApprovalGate:
    """The approval state of one executor run inside a LangGraph node.

    Args:
        executor: runs the plan and holds the durable store.
        run_id: where the decisions are stored (and, by default, the executor
            run id; set :attr:`exec_id` to run the plan under another id).
        context: extra fields for the interrupt payload (the outer run id, round).
    """

    def __init__(
        self, executor: EagerExecutor, run_id: str, context: Mapping[str, Any] | None = None
    ) -> None:
        self.executor = executor
        self.run_id = run_id
        self.exec_id = run_id
        self.context = dict(context or {})
        self.decisions: dict[str, Approval] = {}
        self.answered = 0
        self.sources: frozenset[Source] | None = None

    async def replay(self) -> None:
        """Load stored decisions and consume the interrupts they answered.

        Call first thing in the node, before anything else may interrupt.
        """
        found, saved = await self.executor.store.load_value(self.run_id, _DECISIONS)
        if found:
            self.answered = int(saved["answered"])
            self.decisions = {k: Approval.model_validate(v) for k, v in saved["decisions"].items()}
        for _ in range(self.answered):
            interrupt(None)  # returns its stored answer at once; already applied

    async def run(
        self,
        plan: Plan | Iterable[Task] | AsyncIterable[Task],
        *,
        known_tools: Iterable[str] | None = None,
        scope: str | None = None,
        first: RunResult | None = None,
        sources: Iterable[Source] | None = None,
    ) -> RunResult:
        """Run ``plan`` to the end, pausing the graph whenever only flagged tasks remain.

        Args:
            plan: the tasks (a stream is consumed once; later passes use the stored plan).
            known_tools: names a task may call.
            scope: where idempotency keys are recorded.
            first: the result of a pass already made (skips running it again).
            sources: where the plan's literal arguments came from.
        """
        known = None if known_tools is None else list(known_tools)
        self.sources = None if sources is None else frozenset(sources)
        run = first or await self._pass(plan, known, scope)
        while run.awaiting:
            answer = interrupt(self._payload(run))
            self.decisions.update(parse_answer(answer, run.awaiting))
            self.answered += 1
            await self.executor.store.save_value(
                self.run_id,
                _DECISIONS,
                {
                    "answered": self.answered,
                    "decisions": {k: v.model_dump(mode="json") for k, v in self.decisions.items()},
                },
            )
            tasks, _ = await self.executor.store.load(self.exec_id)
            run = await self._pass(Plan(tasks=tuple(tasks)), known, scope)
        return run

    async def _pass(
        self,
        plan: Plan | Iterable[Task] | AsyncIterable[Task],
        known: list[str] | None,
        scope: str | None,
    ) -> RunResult:
        return await self.executor.run(
            plan,
            run_id=self.exec_id,
            known_tools=known,
            approvals=self.decisions,
            scope=scope,
            sources=self.sources,
        )

    def _payload(self, run: RunResult) -> dict[str, Any]:
        tools = {o.task_id: o.tool for o in run.outcomes.values()}
        tools.update({e.task_id: e.tool for e in run.events})
        # A task held by a policy (not flagged by the plan) says which one and why.
        held = {v.task_id: v.message for v in run.violations if v.action == "require_approval"}
        return {
            "type": "approval",
            **self.context,
            "tasks": [
                {
                    "task_id": task_id,
                    "tool": tools.get(task_id, ""),
                    "args": args,
                    **({"policy": held[task_id]} if task_id in held else {}),
                }
                for task_id, args in run.awaiting.items()
            ],
        }


def parse_answer(answer: Any, awaiting: Mapping[str, Any]) -> dict[str, Approval]:
    """Decisions from a resume value.

    Accepted: one decision for every task asked about (``True``/``"approve"``,
    ``False``/``"reject"``, or an :class:`Approval` or its dict), or a mapping
    from task id to such a decision (tasks left out are asked about again).

    Raises:
        PlanError: the answer is not a decision, or names a task not awaiting approval.
    """
    if isinstance(answer, Approval | bool | str) or (
        isinstance(answer, Mapping) and "action" in answer
    ):
        decision = _decision(answer, None)
        return {task_id: decision for task_id in awaiting}
    if not isinstance(answer, Mapping):
        raise PlanError(
            f"the approval answer {answer!r} is not a decision: resume with True/False,"
            ' "approve"/"reject", {"action": "approve" | "reject" | "edit", "reason": ...,'
            ' "args": {...}}, or a mapping from task id to one of these'
        )
    unknown = sorted(set(map(str, answer)) - set(awaiting))
    if unknown:
        raise PlanError(
            f"the approval answer names task(s) {', '.join(unknown)}, but only"
            f" {', '.join(awaiting)} await approval"
        )
    return {str(task_id): _decision(value, str(task_id)) for task_id, value in answer.items()}


def _decision(value: Any, task_id: str | None) -> Approval:
    if isinstance(value, Approval):
        return value
    if isinstance(value, bool):
        return Approval(action="approve" if value else "reject")
    if value in ("approve", "reject"):
        return Approval(action=value)
    try:
        return Approval.model_validate(value)
    except ValidationError as e:
        raise PlanError(
            f"the approval answer {value!r} is not a decision ({e})", task_id=task_id
        ) from e
