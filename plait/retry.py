"""Retrying failed work: which failures may pass, and how long to wait before trying again.

One home for every layer: the OpenAI-compatible client retries a request, the
DAG executor retries a task attempt, and a fallback router decides whether the
next backend is worth asking, all with :func:`is_transient` and one
:class:`RetryPolicy`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from plait.errors import (
    BackendHTTPError,
    BudgetExceeded,
    ConfigError,
    ContextLengthExceeded,
    MemoryAccessDenied,
    MemoryGuardRejected,
    ModelOutputError,
    PlaitError,
    RunError,
    ToolArgumentError,
    ToolPermissionError,
    is_control_flow,
)

__all__ = ["RetryOn", "RetryPolicy", "is_transient"]

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
"""Exception types to retry, or a predicate saying whether an exception is retried."""

# Run-time failures that the same call meets again: a refused permission, a budget
# already spent, arguments that do not fit the schema, a prompt longer than the
# model's context, an output the model produced (the backend did serve it).
# Retrying only waits.
_DECIDED = (
    BudgetExceeded,
    ContextLengthExceeded,
    MemoryAccessDenied,
    MemoryGuardRejected,
    ModelOutputError,
    ToolArgumentError,
    ToolPermissionError,
)

# 408 (request timeout) and 429 (rate limited) pass with time; every other 4xx
# says the request itself is wrong.
_TRANSIENT_STATUSES = frozenset({408, 429})


def is_transient(error: BaseException) -> bool:
    """Whether a failure may not happen again: the default of every retry and fallback.

    True for timeouts, unreachable servers, protocol errors, HTTP 408, 429 and
    5xx, and other run-time failures (a tool that raised, a worker lost). False
    for what the same call meets again: other 4xx answers, a spent budget, a
    refused permission, a memory guard's refusal, arguments that do not fit a
    tool's schema, a prompt over the context length, and a
    :class:`~plait.errors.ModelOutputError` (the backend served the request; the
    model's output was the problem). Usage errors and control flow
    (cancellation, LangGraph interrupts) are never transient.
    """
    if is_control_flow(error):
        return False
    if isinstance(error, BackendHTTPError):
        return error.status_code in _TRANSIENT_STATUSES or error.status_code >= 500
    if isinstance(error, _DECIDED):
        return False
    return isinstance(error, (RunError, TimeoutError))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times something is attempted, and the waits between attempts.

    The wait after failed attempt ``n`` (from 1) is
    ``min(max_backoff_s, initial_backoff_s * multiplier ** (n - 1))``, then
    reduced by a random share of up to ``jitter`` of it, so callers that failed
    together do not all retry at the same instant (``jitter=1``: "full jitter",
    anywhere between no wait and the full one). A wait the server asked for
    (HTTP ``Retry-After``) replaces the computed one, capped at
    ``max_retry_after_s``.

    Only run-time failures are worth another attempt. ``retry_on`` chooses
    among them (default :func:`is_transient`). Usage errors
    (:class:`~plait.errors.ConfigError`, :class:`~plait.errors.PlanError` and
    the other :class:`~plait.errors.PlaitError` outside ``RunError``) are never
    retried, whatever ``retry_on`` says: the same call would fail the same way.
    Control flow (cancellation, LangGraph interrupts) is not a failure and
    never retried.

    Attributes:
        max_attempts: attempts in all, the first one included (1: never retry).
        initial_backoff_s: wait before the first retry.
        multiplier: factor applied to the wait after each further failure.
        max_backoff_s: ceiling of one wait.
        jitter: share of a wait (0 to 1) that may be randomly taken off it
            (0: exact waits; 1: anywhere between no wait and the full one).
        max_retry_after_s: ceiling of a wait the server asked for.
        retry_on: exception types that are retried, or a predicate on the
            exception.
    """

    max_attempts: int = 3
    initial_backoff_s: float = 0.5
    multiplier: float = 2.0
    max_backoff_s: float = 30.0
    jitter: float = 0.5
    max_retry_after_s: float = 60.0
    retry_on: RetryOn = is_transient

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(
                f"RetryPolicy.max_attempts must be at least 1, not {self.max_attempts}"
            )
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.max_retry_after_s < 0:
            raise ConfigError("RetryPolicy waits cannot be negative")
        if self.multiplier < 1:
            raise ConfigError(f"RetryPolicy.multiplier must be at least 1, not {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"RetryPolicy.jitter must be between 0 and 1, not {self.jitter}")
        retry_on = self.retry_on
        types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
        exception_types = all(isinstance(t, type) and issubclass(t, BaseException) for t in types)
        if not exception_types and (isinstance(retry_on, (tuple, type)) or not callable(retry_on)):
            raise ConfigError(
                "RetryPolicy.retry_on takes an exception type, a tuple of them or a predicate"
            )

    @classmethod
    def from_retries(cls, retries: int, backoff_s: float = 0.0) -> RetryPolicy:
        """The executor's ``retries=`` / ``retry_backoff_s=`` options as a policy.

        ``retries`` extra attempts; the wait starts at ``backoff_s`` and doubles
        on each further attempt, with no ceiling and no jitter.
        """
        if retries < 0:
            raise ConfigError(f"retries cannot be negative, not {retries}")
        return cls(
            max_attempts=retries + 1,
            initial_backoff_s=backoff_s,
            multiplier=2.0,
            max_backoff_s=math.inf,
            jitter=0.0,
        )

    def with_attempts(self, max_attempts: int) -> RetryPolicy:
        """The same policy with another number of attempts (a task's own ``retries``)."""
        if max_attempts == self.max_attempts:
            return self
        return replace(self, max_attempts=max_attempts)

    def should_retry(self, error: BaseException) -> bool:
        """Whether a failure with ``error`` deserves another attempt (if any is left)."""
        if is_control_flow(error):
            return False
        if isinstance(error, PlaitError) and not isinstance(error, RunError):
            return False  # a usage error: the same call fails the same way
        retry_on = self.retry_on
        if isinstance(retry_on, (type, tuple)):
            return isinstance(error, retry_on)
        return bool(retry_on(error))

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (from 1), before any jitter."""
        if self.initial_backoff_s == 0:
            return 0.0
        try:
            wait = self.initial_backoff_s * self.multiplier ** (attempt - 1)
        except OverflowError:
            return self.max_backoff_s
        return min(self.max_backoff_s, wait)

    def delay(
        self,
        attempt: int,
        rng: random.Random | None = None,
        *,
        retry_after: float | None = None,
    ) -> float:
        """The wait after failed attempt ``attempt`` (from 1), jitter included.

        ``retry_after``: the wait the server asked for, which replaces the
        computed one (capped at ``max_retry_after_s``, never jittered: the
        server named the moment).
        """
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_retry_after_s)
        wait = self.backoff(attempt)
        if self.jitter == 0 or wait == 0:
            return wait
        draw = (rng or random).random()
        return wait * (1.0 - self.jitter * draw)
