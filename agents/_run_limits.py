"""An agent run's limits as it runs: deadline, steps and tokens, and how hitting one ends it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from plait.completions import Usage

from ._trace import StopReason

if TYPE_CHECKING:
    from ._agent import AgentLimits

__all__ = ["RunLimits"]  # and _LimitReached, the private stop signal of a run

T = TypeVar("T")


class _LimitReached(Exception):
    """A limit was reached; the run ends with a result naming it.

    Limits are checked deep inside the run (every bounded await checks the
    deadline), so an exception is what carries the news up to
    :meth:`~plait.agents._loop.AgentRun.events`, which catches it: it never
    leaves the agent's run.
    """

    def __init__(self, reason: StopReason) -> None:
        self.reason = reason
        super().__init__(reason)


class RunLimits:
    """The agent's :class:`~plait.agents.AgentLimits` applied to one run."""

    def __init__(self, limits: AgentLimits) -> None:
        self.limits = limits
        self._deadline: float | None = None

    def start(self) -> None:
        """The run starts now: its time limit counts from here."""
        if self.limits.timeout_s is not None:
            self._deadline = asyncio.get_running_loop().time() + self.limits.timeout_s

    def remaining(self) -> float | None:
        """Seconds left (``None``: no time limit).

        Raises:
            _LimitReached: the time is up.
        """
        if self._deadline is None:
            return None
        left = self._deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise _LimitReached("timeout")
        return left

    async def bounded(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` within the time left (then :class:`_LimitReached`)."""
        try:
            return await asyncio.wait_for(awaitable, self.remaining())
        except TimeoutError:
            raise _LimitReached("timeout") from None

    def check_tokens(self, usage: Usage) -> None:
        """Stop a run whose tokens so far reached ``max_tokens``."""
        if usage.total_tokens >= self.limits.max_tokens:
            raise _LimitReached("max_tokens")

    def check_steps(self, steps: int) -> None:
        """Stop a run that has made ``max_steps`` model turns."""
        if steps >= self.limits.max_steps:
            raise _LimitReached("max_steps")
