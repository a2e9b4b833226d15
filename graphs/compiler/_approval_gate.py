"""``ApprovalGate``, deprecated: approval through LangGraph interrupts inside a node.

The planner loop pauses through the executor's own hold now (:mod:`._loop`),
and :meth:`LLMCompiler.graph` asks LangGraph users with one ``interrupt()`` per
node (:mod:`._langgraph_edge`). This class is kept for one release.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

from plait.provenance import Source

from ..dag import Approval, EagerExecutor, Plan, RunResult, Task
from ._approval import approval_request, parse_answer

__all__ = ["ApprovalGate"]

_DECISIONS = "approvals"


class ApprovalGate:
    """The approval state of one executor run inside a LangGraph node (deprecated).

    Args:
        executor: runs the plan and holds the durable store.
        run_id: where the decisions are stored (and, by default, the executor
            run id; set :attr:`exec_id` to run the plan under another id).
        context: ``run_id`` and ``round`` for the interrupt payload.
    """

    def __init__(
        self, executor: EagerExecutor, run_id: str, context: Mapping[str, Any] | None = None
    ) -> None:
        warnings.warn(
            "ApprovalGate is deprecated: LLMCompiler pauses for approval itself"
            " (arun/aresume, or LLMCompiler.graph() for LangGraph interrupts)",
            DeprecationWarning,
            stacklevel=2,
        )
        self.executor = executor
        self.run_id = run_id
        self.exec_id = run_id
        self.context = dict(context or {})
        self.decisions: dict[str, Approval] = {}
        self.answered = 0
        self.sources: frozenset[Source] | None = None

    async def replay(self) -> None:
        """Load stored decisions and consume the interrupts they answered (call first)."""
        from langgraph.types import interrupt

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
        """Run ``plan`` to the end, interrupting the graph whenever only flagged tasks remain."""
        from langgraph.types import interrupt

        known = None if known_tools is None else list(known_tools)
        self.sources = None if sources is None else frozenset(sources)
        run = first or await self._pass(plan, known, scope)
        while run.awaiting:
            tasks = approval_request(run, self.run_id, 0)["tasks"]
            answer = interrupt({"type": "approval", **self.context, "tasks": tasks})
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
