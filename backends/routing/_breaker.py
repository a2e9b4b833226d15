"""Circuit breakers, one per backend object per process, shared by every router."""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from plait.errors import ConfigError

from .._base import Backend

__all__ = ["CircuitBreaker", "shared_breaker"]


@dataclass
class CircuitBreaker:
    """Opens after ``failure_threshold`` failures within ``window_s``; stays open ``cooldown_s``.

    After the cool-down exactly one trial request (the half-open probe) is let
    through: its success closes the circuit, its failure opens it for another
    cool-down. Only the caller decides what counts as a failure: routers count
    transport errors, never a budget or policy refusal.

    Args:
        failure_threshold: failures within the window that open the circuit.
        cooldown_s: seconds an open circuit refuses requests.
        clock: monotonic clock (tests pass a fake one).
        window_s: how far back failures count.
    """

    failure_threshold: int = 3
    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    window_s: float = 30.0
    opened_at: float | None = None
    probing: bool = False
    recent: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cooldown_s < 0 or self.window_s <= 0:
            raise ConfigError(
                "circuit breaker: failures must be >= 1, cooldown_s >= 0 and window_s > 0"
            )

    @property
    def failures(self) -> int:
        """Failures counted in the current window."""
        self._forget_old(self.clock())
        return len(self.recent)

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` (cool-down over, probe pending)."""
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.retry_in() == 0.0 else "open"

    def allows(self) -> bool:
        """Whether a request may be sent now; a half-open circuit lets one probe through."""
        if self.opened_at is None:
            return True
        if self.probing or self.retry_in() > 0.0:
            return False
        return True

    def begin(self) -> None:
        """Mark a request as sent; when half-open it is the one probe."""
        if self.opened_at is not None:
            self.probing = True

    def retry_in(self) -> float:
        """Seconds until the circuit lets a trial request through."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self.clock() - self.opened_at))

    def success(self) -> bool:
        """Record a success; return whether it closed an open circuit."""
        was_open = self.opened_at is not None
        self.recent.clear()
        self.opened_at = None
        self.probing = False
        return was_open

    def failure(self) -> bool:
        """Record a failure; return whether it opened a closed circuit."""
        now = self.clock()
        self._forget_old(now)
        self.recent.append(now)
        was_open = self.opened_at is not None
        if was_open or len(self.recent) >= self.failure_threshold:
            self.opened_at = now
        self.probing = False
        return not was_open and self.opened_at is not None

    def _forget_old(self, now: float) -> None:
        while self.recent and now - self.recent[0] > self.window_s:
            self.recent.popleft()


# id(backend) -> (weak reference to it, its breaker). Keyed by identity: two
# routers holding the same backend object share one breaker; the entry goes
# when the backend is collected, so a reused id never inherits a stale state.
_BREAKERS: dict[int, tuple[weakref.ref[Backend], CircuitBreaker]] = {}


def shared_breaker(
    backend: Backend,
    *,
    failure_threshold: int = 3,
    window_s: float = 30.0,
    cooldown_s: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> CircuitBreaker:
    """The process-wide breaker of ``backend``, made with these settings on first use.

    Later callers get the existing breaker whatever settings they pass: the
    first router to use a backend configures its breaker.
    """
    key = id(backend)
    entry = _BREAKERS.get(key)
    if entry is not None and entry[0]() is backend:
        return entry[1]
    breaker = CircuitBreaker(failure_threshold, cooldown_s, clock, window_s)
    _BREAKERS[key] = (weakref.ref(backend, lambda _ref: _BREAKERS.pop(key, None)), breaker)
    return breaker
