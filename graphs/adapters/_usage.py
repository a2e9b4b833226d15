"""Deprecated: the executor itself now stops at the first usage error.

``EagerExecutor(runner, stop_on_usage_error=True)`` ends the run at the first
usage error a task raises (``ConfigError``, ``PlanError``: a misconfigured
agent, backend or tool), cancels the tasks still running and raises the error
unchanged. :class:`UsageErrorStop`, which wrapped the runner and raced the
executor to do the same, stays for one release and warns when it is built.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable
from typing import Any, TypeVar

from plait.errors import PlaitError, is_usage_error

from ..dag import Task, TaskRunner

__all__ = ["UsageErrorStop"]

T = TypeVar("T")


class UsageErrorStop:
    """Deprecated: use ``EagerExecutor(..., stop_on_usage_error=True)`` instead.

    ``executor = EagerExecutor(stop.wrap(runner))`` then
    ``await stop.run(executor.run(plan))``: the run's result, or the usage error.
    """

    def __init__(self) -> None:
        warnings.warn(
            "UsageErrorStop is deprecated: build the executor with stop_on_usage_error=True",
            DeprecationWarning,
            stacklevel=2,
        )
        self.error: PlaitError | None = None
        self._tripped: asyncio.Event | None = None

    def wrap(self, runner: TaskRunner) -> TaskRunner:
        """``runner``, noting a usage error (which it still raises) for :meth:`run`."""

        async def run(task: Task, args: dict[str, Any]) -> Any:
            try:
                return await runner(task, args)
            except PlaitError as e:
                if is_usage_error(e) and self.error is None:
                    self.error = e
                    if self._tripped is not None:
                        self._tripped.set()
                raise

        return run

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` (the executor's run); cancel it at the first usage error."""
        self._tripped = tripped = asyncio.Event()
        work = asyncio.ensure_future(awaitable)
        watch = asyncio.ensure_future(tripped.wait())
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Also when we are cancelled ourselves: nothing is left running.
            for pending in (work, watch):
                if not pending.done():
                    pending.cancel()
            await asyncio.gather(work, watch, return_exceptions=True)
        if self.error is not None:
            raise self.error
        return work.result()
