"""The local engine: one llama.cpp context, many sequences, continuous batching.

One thread owns the context. Requests from any thread or event loop are
submitted as :class:`Job` objects; the thread's loop runs queued commands,
admits new jobs and runs one :class:`~._scheduler.Scheduler` step after another
(one decode batch each), so no job waits for another to finish. It also owns the
engine's life: opening the runtime, closing it, and failing everything when the
loop itself fails.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from plait.errors import BackendError, is_control_flow

from ._jobs import EngineOptions, Job, JobEnd
from ._runtime import Runtime
from ._scheduler import Scheduler
from ._stats import EngineStats, StatsRecorder

__all__ = ["Engine", "EngineOptions", "Job", "JobEnd"]


class _Command:
    """A function to run on the engine thread, and where its result goes."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function
        self.done = threading.Event()
        self.result: tuple[bool, Any] = (False, None)

    def run(self) -> None:
        try:
            self.result = (True, self.function())
        except BaseException as e:  # re-raised on the calling thread
            self.result = (False, e)
        finally:
            self.done.set()

    def refuse(self, error: BaseException) -> None:
        self.result = (False, error)
        self.done.set()


class Engine:
    """Serves every request to one model through one llama.cpp context.

    Construction has no side effects; the runtime (the context) is opened and
    the thread started on the first :meth:`submit`.

    When the loop itself fails (llama.cpp raises, a job's ``on_done`` raises),
    the engine is broken: every running and queued job fails with a
    :class:`~plait.errors.BackendError` naming the cause, and so does every
    later :meth:`submit` and :meth:`call`.

    Args:
        open_runtime: opens the runtime on the engine thread (``open_llama`` on a
            loaded model, or a ``FakeLlama`` in tests).
        options: how to build the context.
    """

    def __init__(self, open_runtime: Callable[[EngineOptions], Runtime], options: EngineOptions):
        self._open_runtime = open_runtime
        self.options = options
        self._cond = threading.Condition()
        self._pending: deque[Job] = deque()
        self._commands: deque[_Command] = deque()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._broken: BackendError | None = None
        self._stats = StatsRecorder()
        self._runtime: Runtime | None = None
        self._scheduler: Scheduler | None = None

    # -- any thread ----------------------------------------------------------

    @property
    def broken(self) -> BackendError | None:
        """Why the engine stopped serving, if it failed (``None``: working or closed)."""
        return self._broken

    def submit(self, job: Job) -> None:
        """Queue a job; its callbacks run on the engine thread.

        Raises:
            BackendError: the engine failed earlier (naming why) or was closed.
        """
        with self._cond:
            if self._closing:
                raise self._refusal()
            self._start()
            self._pending.append(job)
            self._cond.notify()

    def call(self, command: Callable[[], Any]) -> Any:
        """Run ``command`` on the engine thread between batches; return its result."""
        queued = _Command(command)
        with self._cond:
            if self._closing:
                raise self._refusal()
            self._start()
            self._commands.append(queued)
            self._cond.notify()
        queued.done.wait()
        ok, value = queued.result
        if not ok:
            raise value
        return value

    def stats(self) -> EngineStats:
        return self._stats.snapshot()

    def close(self) -> None:
        """Stop the engine thread (running jobs fail: the engine was closed) and free it."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _refusal(self) -> BackendError:
        # A fresh error each time: one instance raised in many threads and tasks
        # would collect all their tracebacks.
        broken = self._broken
        if broken is None:
            return BackendError("the local engine was closed")
        error = BackendError(str(broken))
        error.__cause__ = broken.__cause__
        return error

    # -- engine thread: commands ---------------------------------------------

    def clear_cache(self) -> int:
        """Drop every idle, unpinned cached sequence; return how many."""
        return self._running.clear_cache()

    def unpin(self, pin_id: int) -> bool:
        """Release a pin; ``False`` when it was unknown or already released."""
        return self._running.unpin(pin_id)

    @property
    def _running(self) -> Scheduler:
        assert self._scheduler is not None, "commands run only once the loop runs"
        return self._scheduler

    # -- engine thread: the loop ---------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="plait-engine", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        failure: BackendError | None = None
        try:
            try:
                self._runtime = self._open_runtime(self.options)
            except BackendError as e:  # the context could not be created: its error says why
                failure = e
                return
            self._scheduler = Scheduler(self._runtime, self.options, self._stats)
            self._loop(self._scheduler)
        except Exception as e:
            if is_control_flow(e):
                raise
            failure = BackendError(
                f"the local engine failed ({type(e).__name__}: {e}); the requests it was "
                "serving failed with it and it accepts no more"
            )
            failure.__cause__ = e
        finally:
            self._shut_down(failure)

    def _loop(self, scheduler: Scheduler) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._commands or scheduler.busy or self._closing):
                    self._cond.wait()
                if self._closing:
                    return
                commands = list(self._commands)
                self._commands.clear()
                pending = list(self._pending)
                self._pending.clear()
            for command in commands:
                command.run()
            scheduler.expire()
            waiting = [job for job in pending if not scheduler.admit(job)]
            if waiting:  # every sequence busy: retry after this step
                with self._cond:
                    self._pending.extendleft(reversed(waiting))
            scheduler.step()

    def _shut_down(self, failure: BackendError | None) -> None:
        """Fail everything the engine holds (``failure``: it broke) and free the runtime."""
        with self._cond:
            if failure is None and not self._closing:  # something not an Exception escaped
                failure = BackendError("the local engine thread stopped unexpectedly")
            self._broken = failure
            self._closing = True
            pending = list(self._pending)
            self._pending.clear()
            commands = list(self._commands)
            self._commands.clear()
        if failure is None:
            reason = "the local engine was closed while this request ran"
        else:
            reason = str(failure)
        missed: list[BaseException] = []
        if self._scheduler is not None:
            missed = self._scheduler.abort(lambda: self._error(reason, failure))
        for job in pending:
            try:
                job.on_done(JobEnd(error=self._refusal()))
            except BaseException as e:  # kept, not swallowed: raised below
                missed.append(e)
        for command in commands:
            command.refuse(self._refusal())
        if self._runtime is not None:
            self._runtime.close()
        if missed:  # a job's on_done raised while being told; do not lose it
            raise missed[0]

    @staticmethod
    def _error(message: str, failure: BackendError | None) -> BackendError:
        error = BackendError(message)
        if failure is not None:
            error.__cause__ = failure.__cause__
        return error
