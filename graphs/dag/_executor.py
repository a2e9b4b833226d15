"""The eager executor (LLMCompiler's task fetching unit).

A task starts the moment its last dependency finishes: completion of one task
directly starts its ready dependants. There is no polling loop and no superstep
barrier, so a fast branch never waits for a slow one. Tasks may arrive while
the plan is still being produced (an async iterable, e.g. a streaming planner).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import Any

from plait.errors import PlanError
from plait.policies import Policy, PolicySet
from plait.provenance import Source
from plait.retry import RetryPolicy

from ._config import Approver, ExecutorConfig, IdempotencyKey, TaskRunner
from ._events import Approval, RunResult, TaskEvent
from ._execution import PlanExecution
from ._plan import Plan, Task, ValidatedPlan
from ._store import ResultStore

__all__ = ["Approver", "EagerExecutor", "IdempotencyKey", "TaskRunner"]


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
        stop_on_usage_error: the first usage error a task raises (a
            :class:`~plait.errors.PlaitError` outside
            :class:`~plait.errors.RunError`: a misconfigured agent, backend
            or tool) ends the run, cancelling the tasks still running, and
            :meth:`run` raises it unchanged. Off (the default), it fails its
            task (never retried) like any other error.

    The options are held as one frozen :class:`ExecutorConfig` (:attr:`config`);
    :meth:`from_config` builds an executor from one.

    Raises:
        ConfigError: ``retry`` is given together with ``retries`` or
            ``retry_backoff_s``, or a limit is not positive.
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
        stop_on_usage_error: bool = False,
    ) -> None:
        self._config = ExecutorConfig.of(
            runner,
            max_concurrency=max_concurrency,
            tool_limits=tool_limits,
            timeout_s=timeout_s,
            retry=retry,
            retries=retries,
            retry_backoff_s=retry_backoff_s,
            store=store,
            approver=approver,
            idempotency=idempotency,
            policies=policies,
            on_event=on_event,
            stop_on_usage_error=stop_on_usage_error,
        )

    @classmethod
    def from_config(cls, config: ExecutorConfig) -> EagerExecutor:
        """An executor with exactly these settings (a subclass keeps its own runner in it)."""
        executor = object.__new__(cls)
        executor._config = config
        return executor

    @property
    def config(self) -> ExecutorConfig:
        """The settings every run of this executor reads (frozen)."""
        return self._config

    @property
    def policies(self) -> PolicySet:
        """The policies checked before each task."""
        return self._config.policies

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of tasks without their own ``retries``."""
        return self._config.retry

    @property
    def store(self) -> ResultStore:
        """Where results, plans and side-effect records are persisted."""
        return self._config.store

    def with_config(self, **changes: Any) -> EagerExecutor:
        """A copy of this executor with some settings of :attr:`config` replaced."""
        copy = object.__new__(type(self))  # a subclass (e.g. RayExecutor) stays itself
        copy.__dict__.update(self.__dict__)
        copy._config = self._config.with_changes(**changes)
        return copy

    def with_store(self, store: ResultStore) -> EagerExecutor:
        """A copy of this executor (same settings) persisting into ``store``."""
        return self.with_config(store=store)

    def with_policies(self, policies: PolicySet | Iterable[Policy]) -> EagerExecutor:
        """A copy of this executor (same settings and store) checking ``policies``."""
        chosen = policies if isinstance(policies, PolicySet) else PolicySet(policies)
        return self.with_config(policies=chosen)

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

        A static :class:`Plan` is validated as a whole first, unless it is a
        :class:`ValidatedPlan` (what :meth:`Plan.validate_against` returns)
        already checked against these ``known_tools`` (or a subset of them).
        Tasks from a stream are checked as they arrive: they may only depend
        on tasks already seen. Results already stored under ``run_id`` are
        reused, not recomputed.

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
            PlaitError: with ``stop_on_usage_error``, the first usage error a task raised.
        """
        if known_tools is not None and not isinstance(known_tools, (set, frozenset)):
            known_tools = frozenset(known_tools)  # read twice below: an iterator would run dry
        if isinstance(plan, Plan) and not (
            isinstance(plan, ValidatedPlan) and plan.checked_for(known_tools)
        ):
            plan = plan.validate_against(known_tools)
        run_id = run_id or uuid.uuid4().hex[:12]
        execution = PlanExecution(
            self._config, run_id, known_tools, approvals, scope or run_id, sources
        )
        return await execution.execute(plan)

    async def resume(self, run_id: str) -> RunResult:
        """Finish a stored run: reuse every stored result, run only what is missing."""
        tasks, _ = await self._config.store.load(run_id)
        if not tasks:
            raise PlanError(f"no stored run with id {run_id!r}")
        return await self.run(Plan(tasks=tuple(tasks)), run_id=run_id)
