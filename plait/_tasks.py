"""Running awaitables side by side where any exception that escapes one ends them all.

``asyncio.gather`` raises the first exception but leaves the other awaitables
running on their own (a sibling waiting for a result that never comes waits
forever), and ``asyncio.TaskGroup`` wraps what it raises in an
``ExceptionGroup``, which hides a LangGraph interrupt from LangGraph and a
``ConfigError`` from ``except ConfigError``. Callers here catch the failures a
run goes on after (``RunError``) inside each awaitable, so whatever escapes one
(a usage error, cancellation, graph control flow) must stop the others and
reach the caller as itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = ["gather_or_raise"]

T = TypeVar("T")


async def gather_or_raise(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await ``awaitables`` concurrently and return their results in order.

    The first exception one of them raises cancels the others, which are awaited
    before it is raised unchanged (not wrapped in a group).
    """
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    if not tasks:
        return []
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        await _cancel(tasks)  # we are cancelled ourselves: so are they
        raise
    failed = next((t for t in tasks if t in done and _failed(t)), None)
    if failed is not None:
        await _cancel(tasks)
        error = failed.exception()
        assert error is not None
        raise error
    return [t.result() for t in tasks]


def _failed(task: asyncio.Future[Any]) -> bool:
    return not task.cancelled() and task.exception() is not None


async def _cancel(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    # Awaited so none outlives the caller; their outcomes are retrieved here too.
    await asyncio.gather(*tasks, return_exceptions=True)
