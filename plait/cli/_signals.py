"""Running a command's coroutine so that Ctrl-C and SIGTERM always end it, quickly.

``asyncio.run`` would wait at the end for every thread of the default executor,
and a thread stuck in a blocking call never ends; SIGTERM would kill the process
before the run could record itself. :class:`SignalGuard` instead:

- turns SIGINT and SIGTERM into cancelling the command's task, so the run records
  itself as interrupted (its ``finally`` blocks run) and the caller gets
  ``KeyboardInterrupt``, with the signal in :attr:`SignalGuard.signum`;
- gives that cancellation :data:`GRACE_S` seconds; a second signal, or the grace
  running out, stops the loop at once;
- bounds the cleanup (other tasks, async generators) and never joins executor
  threads. :func:`exit_if_stuck` then ends the process even when a non-daemon
  thread is stuck in a call that never returns.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["GRACE_S", "SignalGuard", "exit_if_stuck"]

T = TypeVar("T")

GRACE_S = 5.0
"""Seconds a cancelled run has to record itself before the loop is stopped."""

_CLEANUP_S = 2.0


class SignalGuard:
    """Runs one coroutine so that SIGINT and SIGTERM cancel it (see the module).

    Attributes:
        signum: the first signal that arrived, or ``None``.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def exit_code(self) -> int:
        """The shell's convention for the signal: 128 + its number (130, 143)."""
        return 128 + (self.signum or signal.SIGINT)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` in a fresh event loop; SIGINT/SIGTERM cancel it.

        Raises:
            KeyboardInterrupt: a signal arrived before the coroutine finished
                (:attr:`signum` says which).
        """
        loop = asyncio.new_event_loop()
        executor = ThreadPoolExecutor(thread_name_prefix="plait-io")
        loop.set_default_executor(executor)
        asyncio.set_event_loop(loop)
        name: dict[int, str] = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}
        main = loop.create_task(coroutine)
        received: list[int] = []

        def stop_now() -> None:
            if not main.done():
                loop.stop()

        def on_signal(signum: int) -> None:
            received.append(signum)
            if len(received) == 1:
                self.signum = signum
                main.cancel(name.get(signum, f"signal {signum}"))
                loop.call_later(GRACE_S, stop_now)
            else:
                stop_now()  # asked twice: do not wait for the run to record itself

        handled = _install(loop, on_signal)
        try:
            try:
                return loop.run_until_complete(main)
            except asyncio.CancelledError:
                if received:
                    raise KeyboardInterrupt from None
                raise
            except RuntimeError:
                if received and not main.done():  # stopped by stop_now
                    raise KeyboardInterrupt from None
                raise
        finally:
            for signum, previous in handled.items():
                loop.remove_signal_handler(signum)
                if previous is not None:  # give back what was there (a caller's handler)
                    signal.signal(signum, previous)
            try:
                _cleanup(loop)
            finally:
                executor.shutdown(wait=False, cancel_futures=True)
                asyncio.set_event_loop(None)
                loop.close()


def _install(loop: asyncio.AbstractEventLoop, handler: Any) -> dict[int, Any]:
    """Route SIGINT and SIGTERM to ``handler``; returns the handlers they had."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # signal handlers live on the main thread only
    handled: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        try:
            loop.add_signal_handler(signum, handler, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # no signals here
            continue
        handled[signum] = previous
    return handled


def _cleanup(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left and let it finish, within a bound."""
    if loop.is_running():
        return
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    try:
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=_CLEANUP_S))
        loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), _CLEANUP_S))
    except (TimeoutError, KeyboardInterrupt, RuntimeError):
        pass  # cleanup is best effort: ending the command matters more


def exit_if_stuck(code: int, *, wait_s: float = 1.0) -> None:
    """After an interrupt: end the process now when a non-daemon thread will not end.

    A thread stuck in a blocking call would keep the interpreter from exiting
    (it joins such threads at exit). The run is recorded already, so flush the
    output and leave with ``code``.
    """
    others = [
        t
        for t in threading.enumerate()
        if t is not threading.current_thread() and not t.daemon and t.is_alive()
    ]
    for thread in others:
        thread.join(wait_s / max(1, len(others)))
    if any(t.is_alive() for t in others):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
