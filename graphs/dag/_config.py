"""What an executor is set up with: one frozen :class:`ExecutorConfig`.

Every execution of a plan reads its settings from here and nowhere else, so a
setting is decided once (when the executor is built) and passed on whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from plait.errors import ConfigError
from plait.policies import Policy, PolicySet
from plait.retry import RetryPolicy

from ._events import Approval, TaskEvent
from ._plan import Task
from ._store import MemoryResultStore, ResultStore

__all__ = ["Approver", "ExecutorConfig", "IdempotencyKey", "TaskRunner"]

TaskRunner = Callable[[Task, dict[str, Any]], Awaitable[Any]]
"""Runs one task with its references already replaced by results."""

Approver = Callable[[Task, dict[str, Any]], Awaitable[bool | Approval]]
"""Decides whether a task flagged ``requires_approval`` may run (``True`` approves)."""

IdempotencyKey = Callable[[Task, dict[str, Any]], str | None]
"""The idempotency key of a side-effecting task's call (``None``: the task has none)."""

_NO_RETRIES = RetryPolicy.from_retries(0)


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """The settings of an :class:`~plait.graphs.dag.EagerExecutor`, fixed when it is built.

    Attributes:
        runner: runs a task (a tool call, an agent run, ...).
        max_concurrency: tasks running at once, over all tools.
        tool_limits: tasks running at once per tool name (read-only).
        timeout_s: default per-attempt time limit of a task (``None``: none).
        retry: which failed attempts are tried again, how often, and the waits
            between them; a task's own ``retries`` replaces its number of attempts.
        store: where tasks, results and side-effect records are persisted.
        approver: asked before a ``requires_approval`` task runs (``None``: such
            tasks are rejected, unless a run is given decisions).
        idempotency: a side-effecting task's idempotency key from its resolved
            arguments (``None``: no task has one).
        policies: checked before every task runs, and by the tool runners of
            agents running inside tasks.
        on_event: called with every event as it happens.
        stop_on_usage_error: the first usage error a task raises (a
            :class:`~plait.errors.PlaitError` that is not a
            :class:`~plait.errors.RunError`: a misconfigured agent, backend or
            tool) ends the run: running tasks are cancelled and the error is
            raised to the caller unchanged. Off: it fails its task like any error.

    Raises:
        ConfigError: a concurrency limit is below 1 or the timeout is not positive.
    """

    runner: TaskRunner
    max_concurrency: int = 64
    tool_limits: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    timeout_s: float | None = None
    retry: RetryPolicy = _NO_RETRIES
    store: ResultStore = field(default_factory=MemoryResultStore)
    approver: Approver | None = None
    idempotency: IdempotencyKey | None = None
    policies: PolicySet = field(default_factory=PolicySet)
    on_event: Callable[[TaskEvent], None] | None = None
    stop_on_usage_error: bool = False

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, not {self.max_concurrency}")
        low = sorted(name for name, limit in self.tool_limits.items() if limit < 1)
        if low:
            raise ConfigError(f"tool_limits must be at least 1 (see {', '.join(low)})")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be positive, not {self.timeout_s}")
        if not isinstance(self.tool_limits, MappingProxyType):
            # Frozen all the way down: a caller's dict changing later changes nothing here.
            object.__setattr__(self, "tool_limits", MappingProxyType(dict(self.tool_limits)))
        if not isinstance(self.policies, PolicySet):
            object.__setattr__(self, "policies", PolicySet(self.policies))

    @classmethod
    def of(
        cls,
        runner: TaskRunner,
        *,
        retry: RetryPolicy | None = None,
        retries: int | None = None,
        retry_backoff_s: float | None = None,
        policies: PolicySet | Iterable[Policy] | None = None,
        store: ResultStore | None = None,
        **settings: Any,
    ) -> ExecutorConfig:
        """A config from the executor's constructor options (``retries=`` shorthand included).

        Raises:
            ConfigError: ``retry`` is given together with ``retries`` or ``retry_backoff_s``.
        """
        if retry is not None and (retries is not None or retry_backoff_s is not None):
            raise ConfigError("give either retry= or retries=/retry_backoff_s=, not both")
        if retry is None:
            retry = RetryPolicy.from_retries(retries or 0, retry_backoff_s or 0.0)
        chosen = policies if isinstance(policies, PolicySet) else PolicySet(policies or ())
        return cls(
            runner,
            retry=retry,
            policies=chosen,
            store=store if store is not None else MemoryResultStore(),
            tool_limits=settings.pop("tool_limits", None) or {},
            **settings,
        )

    def with_changes(self, **changes: Any) -> ExecutorConfig:
        """A copy with some settings replaced (checked like a new one)."""
        return replace(self, **changes)
