"""One execution of a plan by :class:`~plait.graphs.dag.EagerExecutor`.

A :class:`PlanExecution` reads only the executor's frozen
:class:`~plait.graphs.dag.ExecutorConfig` and ties the parts together: tasks
arrive into the :class:`~._scheduling.Schedule`; a task whose dependencies
have ended passes the :class:`~._gate.PolicyGate`, then its approval, then its
:class:`~._attempts.Attempts`; a result is made durable
(:class:`~._durable.DurableResults`) before :meth:`PlanExecution.finish` starts
the dependants it made ready. There is no polling loop: completion of one task
directly starts the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

from plait import tracing
from plait.errors import is_control_flow, is_usage_error
from plait.provenance import Source

from ._approval import approval_decision, rejection_reason
from ._attempts import Attempts
from ._config import ExecutorConfig
from ._durable import DurableResults
from ._events import Approval, EventLog, RunResult, TaskOutcome, task_outcome
from ._gate import PolicyGate
from ._plan import Plan, Task
from ._priority import critical_path_priorities
from ._scheduling import Schedule, TaskNode
from ._task_spans import TaskSpans

__all__ = ["PlanExecution"]


class PlanExecution:
    """The working state of one execution of a plan.

    Args:
        config: the executor's settings.
        run_id: names the run in the store.
        known_tools: names a streamed task may call (``None``: do not check).
        approvals: reviewers' decisions by task id (``None``: ask the approver).
        scope: where idempotency keys are recorded.
        sources: where the plan's literal arguments came from (default: the user).
    """

    def __init__(
        self,
        config: ExecutorConfig,
        run_id: str,
        known_tools: Iterable[str] | None,
        approvals: Mapping[str, Approval] | None,
        scope: str,
        sources: Iterable[Source] | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.approvals = approvals
        self.events = EventLog(config.on_event)
        self.schedule = Schedule(known_tools)
        self.gate = PolicyGate(config.policies, self.schedule, self.events, sources)
        self.spans = TaskSpans(run_id)
        self.attempts = Attempts(config, self.events, self.spans, self.gate.violations, scope)
        self.durable = DurableResults(config.store, run_id)
        self.awaiting: dict[str, dict[str, Any]] = {}
        self.bubbles: list[Exception] = []  # LangGraph interrupts raised inside tasks
        self.group: asyncio.TaskGroup | None = None
        self.running: set[asyncio.Task[None]] = set()

    async def execute(self, plan: Plan | Iterable[Task] | AsyncIterable[Task]) -> RunResult:
        """Run every task of ``plan``; the run's result once all have ended.

        Raises:
            PlanError: a streamed task does not fit (the run stops).
            PlaitError: the first usage error a task raised, when the config
                stops on them (its siblings are cancelled).
        """
        await self.durable.load()
        if isinstance(plan, Plan):  # a streamed plan's shape is unknown: neutral
            self.attempts.priorities = critical_path_priorities(plan.tasks)
        invalid: Exception | None = None
        with tracing.span("plait.execute", {"plait.run_id": self.run_id}) as run_span:
            self.spans.parent = tracing.current_span()
            try:
                async with asyncio.TaskGroup() as group:
                    self.group = group
                    try:
                        await self.feed(plan)
                    except Exception as e:  # re-raised below, unwrapped from the task group
                        # An invalid streamed task (or a failing plan stream) stops the
                        # run: nothing more starts and running tasks are cancelled.
                        invalid = e
                        for running in self.running:
                            running.cancel()
            except BaseExceptionGroup as group_error:
                # A LangGraph interrupt (or command) raised inside a task must reach
                # LangGraph as itself, not wrapped by the task group; so must a usage
                # error that stops the run.
                raised = _first(group_error, is_control_flow) or _first(group_error, is_usage_error)
                if raised is not None:
                    raise raised from None
                raise
            if invalid is not None:
                raise invalid
            if self.bubbles:
                # Raised once every other task has ended (and stored its result), so
                # an interrupt from one task does not throw away its siblings' work.
                raise self.bubbles[0]
            outcomes = self.schedule.outcomes()
            run_span.set("plait.tasks", len(outcomes))
            run_span.set("plait.ok", all(o.status == "done" for o in outcomes.values()))
        return RunResult(
            run_id=self.run_id,
            outcomes=outcomes,
            events=tuple(self.events.events),
            wall_s=self.events.now(),
            awaiting=self.awaiting,
            violations=tuple(self.gate.violations),
        )

    async def feed(self, plan: Plan | Iterable[Task] | AsyncIterable[Task]) -> None:
        """Take the plan's tasks as they come."""
        if isinstance(plan, Plan):
            # A whole plan is known (and validated): store it in one write, not one per task.
            await self.durable.save_tasks(plan.tasks)
            for task in plan.tasks:
                await self.arrive(task, saved=True)
            return
        if isinstance(plan, AsyncIterable):
            async for task in plan:
                await self.arrive(task)
        else:
            for task in plan:
                await self.arrive(task)

    async def arrive(self, task: Task, *, saved: bool = False) -> None:
        """Place one task; start it if its dependencies have ended (or restore its result)."""
        dependencies = self.schedule.check(task)
        if not saved:
            await self.durable.save_task(task)
        node = self.schedule.add(task, dependencies)
        self.events.emit("planned", task)
        if task.id in self.durable.stored:
            node.outcome = await self.durable.restored(task, self.gate.base)
            self.events.emit("restored", task)
            self.spans.restored(task)
        elif not node.waiting:
            self.ready(node)

    def ready(self, node: TaskNode) -> None:
        """All dependencies ended: run the task, or skip it if one failed."""
        blocker = self.schedule.blocker(node)
        if blocker is not None:
            error = f"dependency {blocker} did not succeed"
            self.finish(node, task_outcome(node.task, "skipped", error=error))
            return
        assert self.group is not None
        self.running.add(self.group.create_task(self.run_task(node)))

    def finish(self, node: TaskNode, outcome: TaskOutcome) -> None:
        """Record how a task ended and start the dependants that became ready."""
        self.spans.ended(node.task, outcome)
        if outcome.status == "skipped":
            self.events.emit("skipped", node.task, error=outcome.error)
        for dependant in self.schedule.finish(node, outcome):
            self.ready(dependant)

    async def run_task(self, node: TaskNode) -> None:
        try:
            await self.run_task_body(node)
        finally:
            # Here rather than in a done callback: one event-loop turn less per task.
            self.running.discard(asyncio.current_task())

    async def run_task_body(self, node: TaskNode) -> None:
        """Gate, approval, attempts and a durable result, in that order."""
        task = node.task
        args = self.schedule.inputs(node)
        gated = self.gate.decide(node)
        if gated.refusal is not None:
            self.finish(node, gated.refusal)
            return
        if task.requires_approval or gated.action == "require_approval":
            decision = await approval_decision(task, args, self.approvals, self.config.approver)
            if decision is None:
                self.awaiting[task.id] = args
                self.events.emit("awaiting_approval", task)
                return
            if decision.action == "reject":
                self.finish(node, task_outcome(task, "skipped", error=rejection_reason(decision)))
                return
            if decision.action == "edit":
                args = {**args, **(decision.args or {})}
        try:
            outcome = await self.attempts.run(task, args, gated.read)
        except Exception as bubble:
            if not is_control_flow(bubble):
                raise  # a usage error that stops the run
            self.bubbles.append(bubble)
            self.spans.paused(task)
            return
        if outcome.status == "done":
            # Durability: the result is stored before any dependant can start.
            saved = await self.durable.save(task, outcome)
            if saved is not outcome:
                self.events.emit("failed", task, error=saved.error)
            outcome = saved
        self.finish(node, outcome)


def _first(group: BaseExceptionGroup[Any], wanted: Any) -> BaseException | None:
    """The first error in ``group`` (nested groups searched in order) that ``wanted`` picks."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found = _first(error, wanted)
            if found is not None:
                return found
        elif wanted(error):
            return error
    return None
