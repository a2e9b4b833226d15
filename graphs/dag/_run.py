"""The working state of one execution of :class:`~plait.graphs.dag.EagerExecutor`.

Completion of one task directly starts its ready dependants (:meth:`Run.finish`
calls :meth:`Run.ready`); a task's attempts, retries, timeouts, approval,
idempotency and durable result are handled in :meth:`Run.run_task`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plait import tracing
from plait.errors import PlanError, PolicyViolation, is_control_flow
from plait.policies import Violation, enforcing, strictest
from plait.provenance import USER, Source, reading, tool_source, unwrap

from ._events import Approval, RunResult, TaskEvent, TaskOutcome, TaskStatus
from ._plan import Plan, Task
from ._references import find_references, substitute

if TYPE_CHECKING:
    from ._executor import EagerExecutor

__all__ = ["Run"]


@dataclass(slots=True)
class _Node:
    task: Task
    dependencies: frozenset[str]  # computed once: Task.dependencies walks the arguments
    waiting: int = 0  # dependencies that have not ended yet
    dependants: list[str] = field(default_factory=list)
    outcome: TaskOutcome | None = None


class Run:
    """The state of one execution."""

    def __init__(
        self,
        ex: EagerExecutor,
        run_id: str,
        known_tools: Iterable[str] | None,
        approvals: Mapping[str, Approval] | None,
        scope: str,
        sources: Iterable[Source] | None = None,
    ) -> None:
        self.ex = ex
        self.base = frozenset((USER,) if sources is None else sources)
        self.violations: list[Violation] = []
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
        self.on_event = ex._on_event
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
        at = time.perf_counter() - self.started
        event = TaskEvent(kind=kind, task_id=task.id, tool=task.tool, at=at, **fields)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

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
            violations=tuple(self.violations),
        )

    async def feed(self, plan: Plan | Iterable[Task] | AsyncIterable[Task]) -> None:
        if isinstance(plan, Plan):
            # A whole plan is known (and validated): store it in one write, not one per task.
            await self.ex._store.save_tasks(self.run_id, plan.tasks)
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
        if task.id in self.nodes:
            raise PlanError("duplicate task id", task_id=task.id)
        if self.known_tools is not None and task.tool not in self.known_tools:
            raise PlanError(f"unknown tool {task.tool!r}", task_id=task.id)
        dependencies = task.dependencies
        if not dependencies <= self.nodes.keys():
            missing = ", ".join(sorted(dependencies - self.nodes.keys()))
            raise PlanError(f"depends on unknown task(s) {missing}", task_id=task.id)
        if not saved:
            await self.ex._store.save_task(self.run_id, task)
        node = _Node(task, dependencies)
        self.nodes[task.id] = node
        self.emit("planned", task)
        for dep in dependencies:
            dep_node = self.nodes[dep]
            dep_node.dependants.append(task.id)  # once: a task arrives once
            if dep_node.outcome is None:
                node.waiting += 1
        if task.id in self.stored:
            sources = await self.stored_sources(task)
            node.outcome = _outcome(task, "done", result=self.stored[task.id], sources=sources)
            self.emit("restored", task)
            self.task_span(task).set_attributes({"plait.task.status": "restored"})
            self.task_span(task).end()
        elif not node.waiting:
            self.ready(node)

    def ready(self, node: _Node) -> None:
        """All dependencies ended: run the task, or skip it if one failed."""
        failed = [
            d
            for d in sorted(node.dependencies)
            if (o := self.nodes[d].outcome) is not None
            and o.status != "done"
            and not (o.status == "failed" and self.nodes[d].task.continue_on_error)
        ]
        if failed:
            error = f"dependency {failed[0]} did not succeed"
            self.finish(node, _outcome(node.task, "skipped", error=error))
            return
        assert self.group is not None
        self.running.add(self.group.create_task(self.run_task(node)))

    def finish(self, node: _Node, outcome: TaskOutcome) -> None:
        """Record how a task ended and start the dependants that became ready."""
        node.outcome = outcome
        if self.span is not None:
            self.end_task_span(node)
        if outcome.status == "skipped":
            self.emit("skipped", node.task, error=outcome.error)
        dependants = node.dependants
        for dep_id in sorted(dependants) if len(dependants) > 1 else dependants:
            dependant = self.nodes[dep_id]
            dependant.waiting -= 1  # each dependant counted this task once, in arrive()
            if not dependant.waiting and dependant.outcome is None:
                self.ready(dependant)

    async def stored_sources(self, task: Task) -> frozenset[Source]:
        found, value = await self.ex._store.load_value(self.run_id, _sources_key(task.id))
        if not found:  # stored before provenance was recorded: as untrusted as a tool result
            return self.base | {tool_source(task.tool)}
        return frozenset(Source.model_validate(v) for v in value)

    def argument_sources(self, node: _Node) -> dict[str, frozenset[Source]]:
        """Each argument's sources: the plan's own, plus those of every result it references."""
        per_argument = {}
        for name, value in node.task.args.items():
            sources = set(self.base)
            for dep in find_references(value) & node.dependencies:
                outcome = self.nodes[dep].outcome
                if outcome is not None:
                    sources.update(outcome.sources)
            per_argument[name] = frozenset(sources)
        return per_argument

    def trail(self, task_id: str, source: Source) -> list[str]:
        """The tasks ``source`` passed through to reach ``task_id``, origin first."""
        node = self.nodes[task_id]
        label = f"{task_id} ({node.task.tool})"
        for dep in sorted(node.dependencies):
            outcome = self.nodes[dep].outcome
            if outcome is not None and source in outcome.sources:
                return [*self.trail(dep, source), label]
        # No dependency brought it: the task itself read it (or the plan holds it).
        return [f"plan ({source})", label] if source in self.base else [label]

    def check_policies(
        self, node: _Node, per_argument: dict[str, frozenset[Source]]
    ) -> list[Violation]:
        policies = self.ex._policies
        if not policies or not policies.guards(node.task.tool):
            return []
        found = []
        for violation in policies.check(node.task.tool, per_argument, whole=self.base):
            if violation.argument is not None:
                carried = per_argument[violation.argument] | self.base
            else:
                carried = self.base.union(*per_argument.values())
            first = next(s for s in sorted(carried, key=str) if str(s) in violation.offending)
            path = self.trail_into(node, violation.argument, first)
            found.append(violation.model_copy(update={"task_id": node.task.id, "path": path}))
        return found

    def trail_into(self, node: _Node, argument: str | None, source: Source) -> tuple[str, ...]:
        values = node.task.args.values() if argument is None else [node.task.args[argument]]
        refs = set().union(*(find_references(v) for v in values)) & node.dependencies
        label = f"{node.task.id} ({node.task.tool})"
        for dep in sorted(refs):
            outcome = self.nodes[dep].outcome
            if outcome is not None and source in outcome.sources:
                return (*self.trail(dep, source), label)
        return (f"plan ({source})", label)

    def inputs(self, node: _Node) -> dict[str, Any]:
        if not node.task.args:
            return {}  # nothing to substitute (and a fresh dict for the runner)
        results = {}
        for dep in node.dependencies:
            outcome = self.nodes[dep].outcome
            assert outcome is not None
            results[dep] = outcome.result if outcome.status == "done" else f"ERROR: {outcome.error}"
        substituted: dict[str, Any] = substitute(node.task.args, results)
        return substituted

    async def run_task(self, node: _Node) -> None:
        try:
            await self.run_task_body(node)
        finally:
            # Here rather than in a done callback: one event-loop turn less per task.
            self.running.discard(asyncio.current_task())

    async def run_task_body(self, node: _Node) -> None:
        task = node.task
        args = self.inputs(node)
        per_argument = self.argument_sources(node)
        read = self.base.union(*per_argument.values())
        violations = self.check_policies(node, per_argument)
        action = strictest(violations)
        for violation in violations:
            self.violations.append(violation)
            self.emit("blocked", task, error=violation.message)
            tracing.add_event("plait.policy.violation", {"error": violation.message})
        if action in ("fail", "drop"):
            worst = next(v for v in violations if v.action == action)
            status: TaskStatus = "failed" if action == "fail" else "skipped"
            error = worst.message
            self.finish(
                node,
                _outcome(
                    task,
                    status,
                    error=error,
                    exception=PolicyViolation(worst),
                    sources=read,
                    violation=worst,
                ),
            )
            return
        if task.requires_approval or action == "require_approval":
            decision = await self.decision(task, args)
            if decision is None:
                self.awaiting[task.id] = args
                self.emit("awaiting_approval", task)
                return
            if decision.action == "reject":
                reason = f": {decision.reason}" if decision.reason else ""
                error = f"rejected by the reviewer{reason}"
                self.finish(node, _outcome(task, "skipped", error=error))
                return
            if decision.action == "edit":
                args = {**args, **(decision.args or {})}
        try:
            key = self.effect_key(task, args)
        except Exception as e:  # a broken key function fails its task, with the reason
            if is_control_flow(e):
                raise
            error = f"cannot compute the idempotency key: {type(e).__name__}: {e}"
            self.emit("failed", task, error=error)
            self.finish(node, _outcome(task, "failed", error=error, exception=e))
            return
        if key is None:
            outcome = await self.call(task, args, read)
            if outcome is None:
                return
        else:
            # One call per key at a time, so two tasks with one key in a plan
            # cannot both perform the side effect.
            async with self.key_locks.setdefault(key, asyncio.Lock()):
                found, result = await self.ex._store.load_value(self.scope, key)
                if found:
                    self.emit("deduplicated", task)
                    outcome = _outcome(
                        task, "done", result=result, sources=read | {tool_source(task.tool)}
                    )
                else:
                    called = await self.call(task, args, read)
                    if called is None:
                        return
                    outcome = called
                    if outcome.status == "done":
                        await self.ex._store.save_value(self.scope, key, outcome.result)
        if outcome.status == "done":
            # Durability: the result is stored before any dependant can start; a
            # result that cannot be stored fails its task rather than being lost.
            try:
                # The sources first: a stored result is never restored without them.
                await self.ex._store.save_value(
                    self.run_id,
                    _sources_key(task.id),
                    [s.model_dump() for s in sorted(outcome.sources, key=str)],
                )
                await self.ex._store.save_result(self.run_id, task.id, outcome.result)
            except PlanError as e:
                self.emit("failed", task, error=str(e))
                outcome = _outcome(
                    task,
                    "failed",
                    error=str(e),
                    exception=e,
                    attempts=outcome.attempts,
                    started_at=outcome.started_at,
                    finished_at=outcome.finished_at,
                    sources=outcome.sources,
                )
        self.finish(node, outcome)

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

    async def call(
        self, task: Task, args: dict[str, Any], read: frozenset[Source]
    ) -> TaskOutcome | None:
        """The task's outcome, or None when it raised a LangGraph interrupt (kept for later)."""
        tool_slot = self.tool_slots.get(task.tool)
        async with self.slots:
            if tool_slot is not None:
                await tool_slot.acquire()
            try:
                # What the task reads and the run's policies follow it into agents
                # it starts, so their own tool calls are checked as well.
                with reading(read), enforcing(self.ex._policies, self.violations):
                    if self.span is None:  # tracing is off
                        return await self.attempts(task, args, read)
                    # The span covers the attempts only, so a timeline shows real work.
                    self.task_span(task)
                    with tracing.use_span(self.task_spans.get(task.id)):
                        return await self.attempts(task, args, read)
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

    async def attempts(
        self, task: Task, args: dict[str, Any], read: frozenset[Source]
    ) -> TaskOutcome:
        policy = self.ex._retry
        if task.retries is not None:
            policy = policy.with_attempts(task.retries + 1)
        timeout = task.timeout_s if task.timeout_s is not None else self.ex._timeout_s
        runner = self.ex._runner
        started = self.now()
        self.emit("started", task)
        attempt = 1
        while True:
            try:
                if timeout is None:
                    result = await runner(task, args)
                else:
                    async with asyncio.timeout(timeout) as limit:
                        result = await runner(task, args)
            except Exception as e:  # a task failure is data for the plan, not a crash
                if is_control_flow(e):
                    raise  # a LangGraph interrupt from inside a task: not a failure
                exception: Exception = e
                if timeout is not None and isinstance(e, TimeoutError) and limit.expired():
                    error = f"timed out after {timeout:g}s"
                else:
                    error = f"{type(e).__name__}: {e}"
            else:
                ended = self.now()
                self.emit("finished", task, duration_s=ended - started, attempt=attempt)
                # A runner that does not say where its result came from is treated
                # like any tool: its result is untrusted.
                value, declared = unwrap(result)
                own = {tool_source(task.tool)} if declared is None else declared
                return _outcome(
                    task,
                    "done",
                    result=value,
                    sources=read | own,
                    attempts=attempt,
                    started_at=started,
                    finished_at=ended,
                )
            if attempt >= policy.max_attempts or not policy.should_retry(exception):
                break
            attempt += 1
            self.emit("retrying", task, attempt=attempt, error=error)
            tracing.add_event("plait.retry", {"plait.attempt": attempt, "error": error})
            await asyncio.sleep(policy.delay(attempt - 1))
        ended = self.now()
        self.emit("failed", task, duration_s=ended - started, attempt=attempt, error=error)
        return _outcome(
            task,
            "failed",
            error=error,
            exception=exception,
            sources=read,
            attempts=attempt,
            started_at=started,
            finished_at=ended,
        )


def _outcome(task: Task, status: TaskStatus, **fields: Any) -> TaskOutcome:
    return TaskOutcome(task_id=task.id, tool=task.tool, status=status, **fields)


def _sources_key(task_id: str) -> str:
    return f"sources:{task_id}"


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
