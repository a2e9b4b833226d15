"""The one way plait's blocking entry points (``run()``, ``*_sync``) call async code.

Every sync wrapper goes through :func:`run_sync` or :func:`iterate_sync`, so the
check for a running event loop (where blocking would deadlock it) and its message
are the same everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from plait.errors import ConfigError

__all__ = ["iterate_sync", "run_sync"]

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T], *, name: str, instead: str) -> T:
    """Run ``coroutine`` to the end on a new event loop and return its result.

    Args:
        coroutine: the async call to run.
        name: the blocking call, for the error (``"Agent.run()"``).
        instead: what to await inside a running loop (``"await agent.arun()"``).

    Raises:
        ConfigError: an event loop is already running in this thread.
    """
    _refuse_inside_loop(name, instead, coroutine)
    return asyncio.run(coroutine)


def iterate_sync(items: AsyncIterator[T], *, name: str, instead: str) -> Iterator[T]:
    """Yield from an async iterator on a private event loop, closing both at the end."""
    _refuse_inside_loop(name, instead, None)
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(items))
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            loop.run_until_complete(aclose())
        loop.close()


def _refuse_inside_loop(
    name: str, instead: str, coroutine: Coroutine[Any, Any, Any] | None
) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    if coroutine is not None:
        coroutine.close()  # never started: close it so Python does not warn it was not awaited
    raise ConfigError(f"{name} was called inside a running event loop; use '{instead}' there")
