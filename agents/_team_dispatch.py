"""A supervisor's pluggable steps: the dispatch of its subtasks (default: asyncio tasks)
and the reviewer of a worker's answer.

A dispatch decides only the order and the concurrency; what one subtask does
(its worker, review and retries) is the team run's ``work`` it is handed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from plait._tasks import gather_or_raise
from plait.errors import BudgetExceeded, WorkerFailed

from ._team_plan import Review, Subtask

__all__ = ["Dispatch", "Reviewer", "WorkFn", "gather_dispatch"]

WorkFn = Callable[[Subtask, Mapping[str, str]], Awaitable[str]]
"""Runs one subtask's worker (with review) given the results it needs.

Raises :class:`WorkerFailed` when the subtask ends without an accepted result."""

Dispatch = Callable[[Sequence[Subtask], WorkFn], Awaitable[None]]
"""Runs every subtask once its needs are accepted, independent ones concurrently,
never a subtask whose need failed.

A supervisor calls ``await dispatch(subtasks, work)``; ``await work(subtask, inputs)``
runs one subtask's worker (with review), ``inputs`` being the accepted results of
its needs by subtask id, and raises :class:`~plait.errors.WorkerFailed` when the
subtask ends without an accepted result."""

Reviewer = Callable[[Subtask, str], Awaitable[Review]]
"""Reviews a worker's answer to a subtask (a policy; :meth:`Supervisor` builds an
agent reviewer when given a backend)."""


async def gather_dispatch(subtasks: Sequence[Subtask], work: WorkFn) -> None:
    """Run subtasks as asyncio tasks, each after the subtasks it needs succeeded.

    Anything other than a subtask's failure (a usage error, cancellation, a
    LangGraph interrupt) cancels the other subtasks and propagates.
    """
    done: dict[str, asyncio.Future[str]] = {
        s.id: asyncio.get_running_loop().create_future() for s in subtasks
    }

    async def one(sub: Subtask) -> None:
        try:
            inputs = {n: await done[n] for n in sub.needs}
            done[sub.id].set_result(await work(sub, inputs))
        except (WorkerFailed, BudgetExceeded) as e:
            done[sub.id].set_exception(e)

    await gather_or_raise(one(s) for s in subtasks)
    for future in done.values():
        if future.done() and not future.cancelled():
            future.exception()  # mark retrieved: failures are reported by the supervisor
