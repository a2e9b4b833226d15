"""The eager executor (LLMCompiler's task fetching unit).

A task starts the moment its last dependency finishes: completion of one task
directly starts its ready dependants. There is no polling loop and no superstep
barrier, so a fast branch never waits for a slow one. Tasks may arrive while
the plan is still being produced (an async iterable, e.g. a streaming planner).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import Any

from plait.errors import ConfigError, PlanError
from plait.policies import Policy, PolicySet
from plait.provenance import Source

from ._events import Approval, RunResult, TaskEvent
from ._plan import Plan, Task
from ._retry import RetryPolicy
from ._run import Run
from ._store import MemoryResultStore, ResultStore

__all__ = ["Approver", "EagerExecutor", "IdempotencyKey", "TaskRunner"]

TaskRunner = Callable[[Task, dict[str, Any]], Awaitable[Any]]
"""Runs one task with its references already replaced by results."""

Approver = Callable[[Task, dict[str, Any]], Awaitable[bool | Approval]]
"""Decides whether a task flagged ``requires_approval`` may run (``True`` approves)."""

IdempotencyKey = Callable[[Task, dict[str, Any]], str | None]
"""The idempotency key of a side-effecting task's call (``None``: the task has none)."""


class EagerExecutor:
    """Runs plans as soon as each task's inputs are ready.

    Args:
        runner: runs a task (a tool call, an agent run, ...).
        max_concurrency: tasks running at once, over all tools.
        tool_limits: tasks running at once per tool name.
        timeout_s: default per-attempt time limit of a task.
        retry: which failed attempts are tried again, how often, and the waits
            between attempts (default: no retries). A task's own ``retries``
            replaces the policy's number of attempts for that task.
        retries: shorthand for ``retry``: extra attempts after a failure
            (a :class:`~plait.errors.RunError` or a timeout).
        retry_backoff_s: with ``retries``, the wait before a retry, doubled on
            each further attempt.
        store: where results are persisted before dependants start (resume).
        approver: asked before a ``requires_approval`` task runs; without one,
            such tasks are skipped (unless decisions are passed to :meth:`run`).
        idempotency: gives a task's idempotency key from its resolved arguments.
            A completed call's result is stored under its key, and a later call
            with the same key in the same scope (a retry, a resumed run, a
            replanned round) reuses it instead of calling again.
        policies: checked before every task runs (and, through the task's
            context, before every tool call of an agent running in a task):
            a task whose arguments carry data from a source a policy refuses
            does not run; see :mod:`plait.policies`.
        on_event: called with every event as it happens.

    Raises:
        ConfigError: ``retry`` is given together with ``retries`` or ``retry_backoff_s``.
    """

    def __init__(
        self,
        runner: TaskRunner,
        *,
        max_concurrency: int = 64,
        tool_limits: Mapping[str, int] | None = None,
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
        retries: int | None = None,
        retry_backoff_s: float | None = None,
        store: ResultStore | None = None,
        approver: Approver | None = None,
        idempotency: IdempotencyKey | None = None,
        policies: PolicySet | Iterable[Policy] | None = None,
        on_event: Callable[[TaskEvent], None] | None = None,
    ) -> None:
        self._runner = runner
        self._max_concurrency = max_concurrency
        self._tool_limits = dict(tool_limits or {})
        self._timeout_s = timeout_s
        if retry is not None and (retries is not None or retry_backoff_s is not None):
            raise ConfigError("give either retry= or retries=/retry_backoff_s=, not both")
        self._retry = retry or RetryPolicy.from_retries(retries or 0, retry_backoff_s or 0.0)
        self._store = store or MemoryResultStore()
        self._approver = approver
        self._idempotency = idempotency
        self._on_event = on_event
        self._policies = policies if isinstance(policies, PolicySet) else PolicySet(policies or ())

    @property
    def policies(self) -> PolicySet:
        """The policies checked before each task."""
        return self._policies

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of tasks without their own ``retries``."""
        return self._retry

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

    def with_policies(self, policies: PolicySet | Iterable[Policy]) -> EagerExecutor:
        """A copy of this executor (same settings and store) checking ``policies``."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy._policies = policies if isinstance(policies, PolicySet) else PolicySet(policies)
        return copy

    async def run(
        self,
        plan: Plan | Iterable[Task] | AsyncIterable[Task],
        *,
        run_id: str | None = None,
        known_tools: Iterable[str] | None = None,
        approvals: Mapping[str, Approval] | None = None,
        scope: str | None = None,
        sources: Iterable[Source] | None = None,
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
            sources: where the plan's literal arguments came from (default:
                the user). A plan written by a model that read tool results
                carries their sources too.

        Raises:
            PlanError: the plan is invalid (nothing of it has run, for a static plan).
        """
        if isinstance(plan, Plan):
            plan.validate_against(known_tools)
        run_id = run_id or uuid.uuid4().hex[:12]
        run = Run(self, run_id, known_tools, approvals, scope or run_id, sources)
        return await run.execute(plan)

    async def resume(self, run_id: str) -> RunResult:
        """Finish a stored run: reuse every stored result, run only what is missing."""
        tasks, _ = await self._store.load(run_id)
        if not tasks:
            raise PlanError(f"no stored run with id {run_id!r}")
        return await self.run(Plan(tasks=tuple(tasks)), run_id=run_id)
