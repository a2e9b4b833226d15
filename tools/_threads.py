"""Where sync tools run: a bounded set of daemon threads of their own.

A sync function cannot be interrupted. When its caller stops waiting (the call
timed out, or the run was cancelled) the thread keeps running it: the call is
*abandoned*. On asyncio's default executor such threads would starve every later
``to_thread`` user (result-store commits, memory, model loading) and be joined at
shutdown, so a run with a few stuck tools could neither go on nor end. Here:

- tools run only on this lane's threads, never on the default executor;
- at most ``max_workers`` calls run at once; an abandoned call stops counting,
  so a stuck tool cannot hold a place others wait for;
- abandoned calls are capped (``max_abandoned``): past the cap a new call fails at
  once with a :class:`~plait.errors.ToolError` saying so, instead of piling up
  threads;
- the threads are daemon threads and nothing joins them, so a process whose
  run ended (Ctrl-C included) exits even while a tool is stuck.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from plait.errors import ConfigError, ToolError

__all__ = ["SYNC_TOOLS", "ThreadLane"]

_State = Literal["queued", "running", "abandoned", "cancelled", "done"]


@dataclass(eq=False, slots=True)
class _Job:
    call: Callable[[], Any]
    name: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    state: _State = field(default="queued")


class ThreadLane:
    """A pool of daemon threads for blocking calls whose callers may give up on them.

    Args:
        name: thread name prefix (and what errors call the calls).
        max_workers: calls running at once (abandoned calls excluded).
        max_abandoned: abandoned calls still running before new calls are refused.
        idle_s: an idle thread exits after this many seconds.
    """

    def __init__(
        self,
        name: str,
        *,
        max_workers: int = 16,
        max_abandoned: int = 32,
        idle_s: float = 30.0,
    ) -> None:
        if max_workers < 1 or max_abandoned < 0 or idle_s <= 0:
            raise ConfigError(
                f"ThreadLane needs max_workers >= 1, max_abandoned >= 0 and idle_s > 0;"
                f" got {max_workers}, {max_abandoned}, {idle_s}"
            )
        self.name = name
        self.max_workers = max_workers
        self.max_abandoned = max_abandoned
        self.idle_s = idle_s
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._threads = 0
        self._idle = 0
        self._abandoned = 0
        self._started = 0

    @property
    def abandoned(self) -> int:
        """Calls whose caller gave up and that are still running."""
        with self._cond:
            return self._abandoned

    @property
    def threads(self) -> int:
        """Threads alive (running, idle or stuck in an abandoned call)."""
        with self._cond:
            return self._threads

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on a lane thread (in a copy of this context).

        Cancelling the awaiting task abandons a running call (it finishes on its
        own; its result is dropped) and drops a queued one.

        Raises:
            ToolError: ``max_abandoned`` abandoned calls are still running.
        """
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        job = _Job(
            lambda: context.run(fn, *args, **kwargs),
            getattr(fn, "__name__", repr(fn)),
            loop,
            loop.create_future(),
        )
        with self._cond:
            if self._abandoned and self._abandoned >= self.max_abandoned:
                raise ToolError(
                    f"{self._abandoned} timed-out or cancelled calls on {self.name} threads"
                    f" are still running (the limit is {self.max_abandoned}), so {job.name!r}"
                    " was not started: a tool that blocks without end (a read that never"
                    " returns, a lock never released) needs fixing"
                )
            self._queue.append(job)
            self._spawn_if_needed()
            self._cond.notify()
        try:
            return await job.future
        except asyncio.CancelledError:
            with self._cond:
                if job.state == "running":
                    job.state = "abandoned"
                    self._abandoned += 1
                    self._spawn_if_needed()  # its place is free again
                elif job.state == "queued":
                    job.state = "cancelled"
                    self._queue.remove(job)  # never started: nothing to wait for
            raise

    def _spawn_if_needed(self) -> None:
        # Under the lock. Waiting jobs beyond idle threads get a thread, while
        # fewer than max_workers threads are doing live (not abandoned) work.
        if len(self._queue) > self._idle and self._threads - self._abandoned < self.max_workers:
            self._threads += 1
            self._started += 1
            thread = threading.Thread(
                target=self._work, name=f"{self.name}-{self._started}", daemon=True
            )
            thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                while not self._queue:
                    if not self._cond.wait(self.idle_s) and not self._queue:
                        self._idle -= 1
                        self._threads -= 1
                        return
                self._idle -= 1
                job = self._queue.popleft()
                if job.state != "queued":
                    continue
                job.state = "running"
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.call()
            except BaseException as e:  # handed to the caller, whatever it is
                error = e
            with self._cond:
                abandoned = job.state == "abandoned"
                if abandoned:
                    self._abandoned -= 1
                job.state = "done"
            if not abandoned:
                try:
                    job.loop.call_soon_threadsafe(_settle, job.future, result, error)
                except RuntimeError:  # the caller's loop is closed: nobody waits
                    pass
            del job, result, error


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


SYNC_TOOLS = ThreadLane("plait-tool")
"""The lane every sync tool runs on (``Tool.acall``)."""
