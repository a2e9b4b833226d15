"""The eager executor (LLMCompiler's task fetching unit).

A task starts the moment its last dependency finishes: completion of one task
directly starts its ready dependants. There is no polling loop and no superstep
barrier, so a fast branch never waits for a slow one. Tasks may arrive while
the plan is still being produced (an async iterable, e.g. a streaming planner).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plait import tracing
from plait.errors import PlanError, is_control_flow

from ._events import Approval, RunResult, TaskEvent, TaskOutcome
from ._plan import Plan, Task
from ._references import substitute
from ._store import MemoryResultStore, ResultStore

__all__ = ["Approver", "EagerExecutor", "IdempotencyKey", "TaskRunner"]

TaskRunner = Callable[[Task, dict[str, Any]], Awaitable[Any]]
"""Runs one task with its references already replaced by results."""

Approver = Callable[[Task, dict[str, Any]], Awaitable[bool | Approval]]
"""Decides whether a task flagged ``requires_approval`` may run (``True`` approves)."""

IdempotencyKey = Callable[[Task, dict[str, Any]], str | None]
"""The idempotency key of a side-effecting task's call (``None``: the task has none)."""


@dataclass
class _Node:
    task: Task
    waiting_on: set[str]
    dependants: set[str] = field(default_factory=set)
    outcome: TaskOutcome | None = None


class EagerExecutor:
    """Runs plans as soon as each task's inputs are ready.

    Args:
        runner: runs a task (a tool call, an agent run, ...).
        max_concurrency: tasks running at once, over all tools.
        tool_limits: tasks running at once per tool name.
        timeout_s: default per-attempt time limit of a task.
        retries: default extra attempts after a failure.
        retry_backoff_s: wait before a retry, doubled on each further attempt.
        store: where results are persisted before dependants start (resume).
        approver: asked before a ``requires_approval`` task runs; without one,
            such tasks are skipped (unless decisions are passed to :meth:`run`).
        idempotency: gives a task's idempotency key from its resolved arguments.
            A completed call's result is stored under its key, and a later call
            with the same key in the same scope (a retry, a resumed run, a
            replanned round) reuses it instead of calling again.
        on_event: called with every event as it happens.
    """

    def __init__(
        self,
        runner: TaskRunner,
        *,
        max_concurrency: int = 64,
        tool_limits: Mapping[str, int] | None = None,
        timeout_s: float | None = None,
        retries: int = 0,
        retry_backoff_s: float = 0.0,
        store: ResultStore | None = None,
        approver: Approver | None = None,
        idempotency: IdempotencyKey | None = None,
        on_event: Callable[[TaskEvent], None] | None = None,
    ) -> None:
        self._runner = runner
        self._max_concurrency = max_concurrency
        self._tool_limits = dict(tool_limits or {})
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = retry_backoff_s
        self._store = store or MemoryResultStore()
        self._approver = approver
        self._idempotency = idempotency
        self._on_event = on_event

    @property
    def store(self) -> ResultStore:
        """Where results, plans and side-effect records are persisted."""
        return self._store

    def with_store(self, store: ResultStore) -> EagerExecutor:
        """A copy of this executor (same settings) persisting into ``store``."""
        copy = object.__new__(type(self))  # a subclass (e.g. RayExecutor) stays itself
        copy.__dict__.update(self.__dict__)
        copy._store = store
        return copy

    async def run(
        self,
        plan: Plan | Iterable[Task] | AsyncIterable[Task],
        *,
        run_id: str | None = None,
        known_tools: Iterable[str] | None = None,
        approvals: Mapping[str, Approval] | None = None,
        scope: str | None = None,
    ) -> RunResult:
        """Run every task of ``plan`` and return their outcomes.

        A static :class:`Plan` is validated as a whole first. Tasks from a stream
        are checked as they arrive: they may only depend on tasks already seen.
        Results already stored under ``run_id`` are reused, not recomputed.

        Args:
            plan: the tasks, or a stream of them.
            run_id: names the run in the store (default: a fresh id).
            known_tools: names a task may call (``None``: do not check).
            approvals: reviewers' decisions by task id. When given, a flagged
                task without a decision is held: it does not run, nor do its
                dependants, and it is listed in ``RunResult.awaiting``.
            scope: where idempotency keys are recorded (default: ``run_id``);
                a run of several rounds passes one scope for all of them.

        Raises:
            PlanError: the plan is invalid (nothing of it has run, for a static plan).
        """
        if isinstance(plan, Plan):
            plan.validate_against(known_tools)
        run_id = run_id or uuid.uuid4().hex[:12]
        run = _Run(self, run_id, known_tools, approvals, scope or run_id)
        return await run.execute(plan)

    async def resume(self, run_id: str) -> RunResult:
        """Finish a stored run: reuse every stored result, run only what is missing."""
        tasks, _ = await self._store.load(run_id)
        if not tasks:
            raise PlanError(f"no stored run with id {run_id!r}")
        return await self.run(Plan(tasks=tuple(tasks)), run_id=run_id)


class _Run:
    """The state of one execution."""

    def __init__(
        self,
        ex: EagerExecutor,
        run_id: str,
        known_tools: Iterable[str] | None,
        approvals: Mapping[str, Approval] | None,
        scope: str,
    ) -> None:
        self.ex = ex
        self.run_id = run_id
        self.approvals = approvals
        self.scope = scope
        self.awaiting: dict[str, dict[str, Any]] = {}
        self.key_locks: dict[str, asyncio.Lock] = {}
        self.bubbles: list[Exception] = []  # LangGraph interrupts raised inside tasks
        self.known_tools = None if known_tools is None else set(known_tools)
        self.nodes: dict[str, _Node] = {}
        self.events: list[TaskEvent] = []
        self.stored: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.slots = asyncio.Semaphore(ex._max_concurrency)
        self.tool_slots = {k: asyncio.Semaphore(v) for k, v in ex._tool_limits.items()}
        self.group: asyncio.TaskGroup | None = None
        self.running: set[asyncio.Task[None]] = set()
        self.span: tracing.Span | None = None  # the run's span, parent of every task span
        self.task_spans: dict[str, tracing.Span] = {}

    def now(self) -> float:
        return time.perf_counter() - self.started

    def emit(self, kind: Any, task: Task, **fields: Any) -> None:
        event = TaskEvent(kind=kind, task_id=task.id, tool=task.tool, at=self.now(), **fields)
        self.events.append(event)
        if self.ex._on_event is not None:
            self.ex._on_event(event)

    async def execute(self, plan: Plan | Iterable[Task] | AsyncIterable[Task]) -> RunResult:
        _, self.stored = await self.ex._store.load(self.run_id)
        invalid: Exception | None = None
        with tracing.span("plait.execute", {"plait.run_id": self.run_id}) as run_span:
            self.span = tracing.current_span()
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
                # LangGraph as itself, not wrapped by the task group.
                bubble = _first_bubble(group_error)
                if bubble is not None:
                    raise bubble from None
                raise
            if invalid is not None:
                raise invalid
            if self.bubbles:
                # Raised once every other task has ended (and stored its result), so
                # an interrupt from one task does not throw away its siblings' work.
                raise self.bubbles[0]
            outcomes = {i: n.outcome for i, n in self.nodes.items() if n.outcome is not None}
            run_span.set("plait.tasks", len(outcomes))
            run_span.set("plait.ok", all(o.status == "done" for o in outcomes.values()))
        return RunResult(
            run_id=self.run_id,
            outcomes=outcomes,
            events=tuple(self.events),
            wall_s=self.now(),
            awaiting=self.awaiting,
        )

    async def feed(self, plan: Plan | Iterable[Task] | AsyncIterable[Task]) -> None:
        if isinstance(plan, Plan):
            plan = plan.tasks
        if isinstance(plan, AsyncIterable):
            async for task in plan:
                await self.arrive(task)
        else:
            for task in plan:
                await self.arrive(task)

    async def arrive(self, task: Task) -> None:
        if task.id in self.nodes:
            raise PlanError("duplicate task id", task_id=task.id)
        if self.known_tools is not None and task.tool not in self.known_tools:
            raise PlanError(f"unknown tool {task.tool!r}", task_id=task.id)
        missing = sorted(task.dependencies - self.nodes.keys())
        if missing:
            raise PlanError(f"depends on unknown task(s) {', '.join(missing)}", task_id=task.id)
        await self.ex._store.save_task(self.run_id, task)
        node = _Node(task, waiting_on=set())
        self.nodes[task.id] = node
        self.emit("planned", task)
        for dep in task.dependencies:
            dep_node = self.nodes[dep]
            dep_node.dependants.add(task.id)
            if dep_node.outcome is None:
                node.waiting_on.add(dep)
        if task.id in self.stored:
            node.outcome = TaskOutcome(
                task_id=task.id, tool=task.tool, status="done", result=self.stored[task.id]
            )
            self.emit("restored", task)
            self.task_span(task).set_attributes({"plait.task.status": "restored"})
            self.task_span(task).end()
        elif not node.waiting_on:
            self.ready(node)

    def ready(self, node: _Node) -> None:
        """All dependencies ended: run the task, or skip it if one failed."""
        failed = [
            d
            for d in sorted(node.task.dependencies)
            if (o := self.nodes[d].outcome) is not None
            and o.status != "done"
            and not (o.status == "failed" and self.nodes[d].task.continue_on_error)
        ]
        if failed:
            self.finish(node, status="skipped", error=f"dependency {failed[0]} did not succeed")
            return
        assert self.group is not None
        running = self.group.create_task(self.run_task(node))
        self.running.add(running)
        running.add_done_callback(self.running.discard)

    def finish(self, node: _Node, **outcome: Any) -> None:
        """Record how a task ended and start the dependants that became ready."""
        node.outcome = TaskOutcome(task_id=node.task.id, tool=node.task.tool, **outcome)
        self.end_task_span(node)
        if outcome["status"] == "skipped":
            self.emit("skipped", node.task, error=outcome.get("error"))
        for dep_id in sorted(node.dependants):
            dependant = self.nodes[dep_id]
            dependant.waiting_on.discard(node.task.id)
            if not dependant.waiting_on and dependant.outcome is None:
                self.ready(dependant)

    def inputs(self, task: Task) -> dict[str, Any]:
        results = {}
        for dep in task.dependencies:
            outcome = self.nodes[dep].outcome
            assert outcome is not None
            results[dep] = outcome.result if outcome.status == "done" else f"ERROR: {outcome.error}"
        substituted: dict[str, Any] = substitute(task.args, results)
        return substituted

    async def run_task(self, node: _Node) -> None:
        task = node.task
        args = self.inputs(task)
        if task.requires_approval:
            decision = await self.decision(task, args)
            if decision is None:
                self.awaiting[task.id] = args
                self.emit("awaiting_approval", task)
                return
            if decision.action == "reject":
                reason = f": {decision.reason}" if decision.reason else ""
                self.finish(node, status="skipped", error=f"rejected by the reviewer{reason}")
                return
            if decision.action == "edit":
                args = {**args, **(decision.args or {})}
        try:
            key = self.effect_key(task, args)
        except Exception as e:  # a broken key function fails its task, with the reason
            error = f"cannot compute the idempotency key: {type(e).__name__}: {e}"
            self.emit("failed", task, error=error)
            self.finish(node, status="failed", error=error)
            return
        if key is None:
            outcome = await self.call(task, args)
            if outcome is None:
                return
        else:
            # One call per key at a time, so two tasks with one key in a plan
            # cannot both perform the side effect.
            async with self.key_locks.setdefault(key, asyncio.Lock()):
                found, result = await self.ex._store.load_value(self.scope, key)
                if found:
                    self.emit("deduplicated", task)
                    outcome = dict(status="done", result=result)
                else:
                    called = await self.call(task, args)
                    if called is None:
                        return
                    outcome = called
                    if outcome["status"] == "done":
                        await self.ex._store.save_value(self.scope, key, outcome["result"])
        if outcome["status"] == "done":
            # Durability: the result is stored before any dependant can start; a
            # result that cannot be stored fails its task rather than being lost.
            try:
                await self.ex._store.save_result(self.run_id, task.id, outcome["result"])
            except PlanError as e:
                outcome = {**outcome, "status": "failed", "result": None, "error": str(e)}
                self.emit("failed", task, error=str(e))
        self.finish(node, **outcome)

    async def decision(self, task: Task, args: dict[str, Any]) -> Approval | None:
        """The reviewer's decision, or None while it is awaited."""
        if self.approvals is not None:
            return self.approvals.get(task.id)
        if self.ex._approver is None:
            return Approval(action="reject", reason="no approver was configured")
        answer = await self.ex._approver(task, args)
        if isinstance(answer, Approval):
            return answer
        return Approval(action="approve" if answer else "reject")

    def effect_key(self, task: Task, args: dict[str, Any]) -> str | None:
        if self.ex._idempotency is None:
            return None
        key = self.ex._idempotency(task, args)
        return None if key is None else f"effect:{task.tool}:{key}"

    async def call(self, task: Task, args: dict[str, Any]) -> dict[str, Any] | None:
        """The task's outcome, or None when it raised a LangGraph interrupt (kept for later)."""
        tool_slot = self.tool_slots.get(task.tool)
        async with self.slots:
            if tool_slot is not None:
                await tool_slot.acquire()
            try:
                # The span covers the attempts only, so a timeline shows real work.
                self.task_span(task)
                with tracing.use_span(self.task_spans.get(task.id)):
                    return await self.attempts(task, args)
            except Exception as bubble:
                if not is_control_flow(bubble):
                    raise
                self.bubbles.append(bubble)
                span = self.task_spans.pop(task.id, None)
                if span is not None:
                    span.end()
                return None
            finally:
                if tool_slot is not None:
                    tool_slot.release()

    def task_span(self, task: Task) -> tracing.Span | _NoSpan:
        span = self.task_spans.get(task.id)
        if span is None and self.span is not None:
            span = tracing.start_span(
                "plait.task",
                {
                    "plait.run_id": self.run_id,
                    "plait.task.id": task.id,
                    "plait.task.tool": task.tool,
                    "plait.task.dependencies": sorted(task.dependencies),
                },
                parent=self.span,
            )
            if span is not None:
                self.task_spans[task.id] = span
        return span if span is not None else _NO_SPAN

    def end_task_span(self, node: _Node) -> None:
        outcome = node.outcome
        if self.span is None or outcome is None:
            return
        span = self.task_span(node.task)  # a skipped task gets a span of no length
        span.set_attributes(
            {
                "plait.task.status": outcome.status,
                "plait.task.attempts": outcome.attempts,
                "plait.task.error": outcome.error,
            }
        )
        if outcome.status == "failed":
            span.fail(outcome.error or "failed")
        span.end()

    async def attempts(self, task: Task, args: dict[str, Any]) -> dict[str, Any]:
        retries = task.retries if task.retries is not None else self.ex._retries
        timeout = task.timeout_s if task.timeout_s is not None else self.ex._timeout_s
        started = self.now()
        error = ""
        for attempt in range(1, retries + 2):
            if attempt > 1:
                self.emit("retrying", task, attempt=attempt, error=error)
                tracing.add_event("plait.retry", {"plait.attempt": attempt, "error": error})
                await asyncio.sleep(self.ex._backoff_s * 2 ** (attempt - 2))
            else:
                self.emit("started", task)
            try:
                async with asyncio.timeout(timeout):
                    result = await self.ex._runner(task, args)
            except TimeoutError:
                error = f"timed out after {timeout:g}s"
            except Exception as e:  # a task failure is data for the plan, not a crash
                if is_control_flow(e):
                    raise  # a LangGraph interrupt from inside a task: not a failure
                error = f"{type(e).__name__}: {e}"
            else:
                ended = self.now()
                self.emit("finished", task, duration_s=ended - started, attempt=attempt)
                return dict(
                    status="done",
                    result=result,
                    attempts=attempt,
                    started_at=started,
                    finished_at=ended,
                )
        ended = self.now()
        self.emit("failed", task, duration_s=ended - started, attempt=attempt, error=error)
        return dict(
            status="failed", error=error, attempts=attempt, started_at=started, finished_at=ended
        )


def _first_bubble(group: BaseExceptionGroup[Any]) -> BaseException | None:
    for error in group.exceptions:
        if not isinstance(error, BaseExceptionGroup) and is_control_flow(error):
            return error
        if isinstance(error, BaseExceptionGroup):
            found = _first_bubble(error)
            if found is not None:
                return found
    return None


class _NoSpan:
    """Stands in for a task span while tracing is off."""

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        return None

    def fail(self, error: str) -> None:
        return None

    def end(self) -> None:
        return None


_NO_SPAN = _NoSpan()
