"""A task's attempts: idempotency keys and dedup, concurrency slots, timeouts and retries.

:meth:`Attempts.run` is all the executor does to turn a task that may run into
its outcome. A task failure is data for the plan, not a crash: whatever the
runner raises becomes a failed outcome, except control flow (cancellation, a
LangGraph interrupt), which propagates, and, when the config says to stop on
them, usage errors, which end the run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from plait import tracing
from plait._request_priority import requesting_priority
from plait.errors import is_control_flow, is_usage_error
from plait.policies import Violation, enforcing
from plait.provenance import Source, reading, tool_source, unwrap

from ._config import ExecutorConfig
from ._events import EventLog, TaskOutcome, task_outcome
from ._plan import Task
from ._task_spans import TaskSpans

__all__ = ["Attempts"]


class Attempts:
    """Runs the tasks of one execution, each as often as the retry policy allows.

    Args:
        config: the executor's settings (runner, limits, timeout, retry policy,
            idempotency hook, policies, store).
        events: where ``started``, ``retrying``, ``finished``, ``failed`` and
            ``deduplicated`` events go.
        spans: the execution's task spans (a task's span covers its attempts).
        violations: where refusals by agents' tool runners inside tasks are recorded.
        scope: where idempotency keys are recorded (a run of several rounds
            shares one scope).
    """

    __slots__ = ("config", "events", "key_locks", "priorities", "scope", "slots", "spans",
                 "tool_slots", "violations")  # fmt: skip

    def __init__(
        self,
        config: ExecutorConfig,
        events: EventLog,
        spans: TaskSpans,
        violations: list[Violation],
        scope: str,
    ) -> None:
        self.config = config
        self.events = events
        self.spans = spans
        self.violations = violations
        self.scope = scope
        self.slots = asyncio.Semaphore(config.max_concurrency)
        self.tool_slots = {k: asyncio.Semaphore(v) for k, v in config.tool_limits.items()}
        self.key_locks: dict[str, asyncio.Lock] = {}
        # Critical-path priority per task id, set once per plan (empty: neutral).
        self.priorities: dict[str, int] = {}

    async def run(self, task: Task, args: dict[str, Any], read: frozenset[Source]) -> TaskOutcome:
        """Run ``task`` with resolved ``args``; ``read`` is what its arguments carry.

        A task with an idempotency key whose call already completed in this
        scope is not called again: its stored result is reused.

        Raises:
            BaseException: control flow raised inside the task (a LangGraph
                interrupt), and usage errors when the config stops on them.
        """
        hook = self.config.idempotency
        if hook is None:
            return await self.attempts(task, args, read)
        try:
            key = hook(task, args)
        except Exception as e:  # a broken key function fails its task, with the reason
            if is_control_flow(e):
                raise
            error = f"cannot compute the idempotency key: {type(e).__name__}: {e}"
            self.events.emit("failed", task, error=error)
            return task_outcome(task, "failed", error=error, exception=e)
        if key is None:
            return await self.attempts(task, args, read)
        key = f"effect:{task.tool}:{key}"
        store = self.config.store
        # One call per key at a time, so two tasks with one key in a plan cannot
        # both perform the side effect. Taken before a slot: a task waiting for
        # the key must not hold a slot the key's holder needs.
        async with self.key_locks.setdefault(key, asyncio.Lock()):
            found, result = await store.load_value(self.scope, key)
            if found:
                self.events.emit("deduplicated", task)
                return task_outcome(
                    task, "done", result=result, sources=read | {tool_source(task.tool)}
                )
            outcome = await self.attempts(task, args, read)
            if outcome.status == "done":
                await store.save_value(self.scope, key, outcome.result)
            return outcome

    async def attempts(
        self, task: Task, args: dict[str, Any], read: frozenset[Source]
    ) -> TaskOutcome:
        """Every attempt of ``task``, inside its concurrency slots and its span."""
        tool_slot = self.tool_slots.get(task.tool)
        async with self.slots:
            if tool_slot is not None:
                await tool_slot.acquire()
            try:
                # What the task reads and the run's policies follow it into agents
                # it starts, so their own tool calls are checked as well.
                with (
                    reading(read),
                    enforcing(self.config.policies, self.violations),
                    requesting_priority(self.priorities.get(task.id, 0)),
                ):
                    if not self.spans.on:
                        return await self.retried(task, args, read)
                    with tracing.use_span(self.spans.started(task)):
                        return await self.retried(task, args, read)
            finally:
                if tool_slot is not None:
                    tool_slot.release()

    async def retried(
        self, task: Task, args: dict[str, Any], read: frozenset[Source]
    ) -> TaskOutcome:
        """Attempt ``task`` until it succeeds or the retry policy gives up."""
        config = self.config
        policy = config.retry
        if task.retries is not None:
            policy = policy.with_attempts(task.retries + 1)
        timeout = task.timeout_s if task.timeout_s is not None else config.timeout_s
        runner = config.runner
        events = self.events
        started = events.now()
        events.emit("started", task)
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
                if config.stop_on_usage_error and is_usage_error(e):
                    raise  # the run ends here (see ExecutorConfig.stop_on_usage_error)
                exception: Exception = e
                if timeout is not None and isinstance(e, TimeoutError) and limit.expired():
                    error = f"timed out after {timeout:g}s"
                else:
                    error = f"{type(e).__name__}: {e}"
            else:
                ended = events.now()
                events.emit("finished", task, duration_s=ended - started, attempt=attempt)
                # A runner that does not say where its result came from is treated
                # like any tool: its result is untrusted.
                value, declared = unwrap(result)
                own = {tool_source(task.tool)} if declared is None else declared
                return task_outcome(
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
            events.emit("retrying", task, attempt=attempt, error=error)
            tracing.add_event("plait.retry", {"plait.attempt": attempt, "error": error})
            await asyncio.sleep(policy.delay(attempt - 1))
        ended = events.now()
        events.emit("failed", task, duration_s=ended - started, attempt=attempt, error=error)
        return task_outcome(
            task,
            "failed",
            error=error,
            exception=exception,
            sources=read,
            attempts=attempt,
            started_at=started,
            finished_at=ended,
        )
