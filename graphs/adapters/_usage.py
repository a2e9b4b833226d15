"""Usage errors raised inside DAG tasks end the whole run, as themselves.

The eager executor records whatever a task raises (control flow aside) as that
task's failure, which is right for run-time failures: a tool that fails fails
its step. A usage error (``ConfigError``, ``PlanError``: a misconfigured agent,
backend or tool) is not a failure of one step; every step set up the same way
would fail too, and a run reported as "step x failed" hides the mistake. A
:class:`UsageErrorStop` wraps the task runner and the executor's run: the first
usage error a task raises cancels the run and is raised to the caller unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from plait.errors import PlaitError, RunError

from ..dag import Task, TaskRunner

__all__ = ["UsageErrorStop"]

T = TypeVar("T")


class UsageErrorStop:
    """Stops a run at the first usage error one of its tasks raises.

    ``executor = EagerExecutor(stop.wrap(runner))`` then
    ``await stop.run(executor.run(plan))``: the run's result, or the usage error.
    """

    def __init__(self) -> None:
        self.error: PlaitError | None = None
        self._tripped: asyncio.Event | None = None

    def wrap(self, runner: TaskRunner) -> TaskRunner:
        """``runner``, noting a usage error (which it still raises) for :meth:`run`."""

        async def run(task: Task, args: dict[str, Any]) -> Any:
            try:
                return await runner(task, args)
            except PlaitError as e:
                if not isinstance(e, RunError) and self.error is None:
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
