"""The local engine: one llama.cpp context, many sequences, continuous batching.

Requests from any thread or event loop are submitted as :class:`Job` objects.
The engine runs on the process's compute lane (:mod:`._lane`), shared by every
local engine: each of its turns runs queued commands, admits new jobs and runs
one :class:`~._scheduler.Scheduler` step (one decode batch), so no job waits
for another to finish and two models never compute at once. It also owns the
engine's life: opening the runtime, closing it, and failing everything when a
turn itself fails.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from plait.errors import BackendError, is_control_flow

from ._admission import admission_order
from ._jobs import EngineOptions, Job, JobEnd
from ._lane import ComputeLane, shared_lane
from ._runtime import Runtime
from ._scheduler import Scheduler
from ._stats import EngineStats, RequestStats, StatsRecorder

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
        lane: the compute lane whose thread runs this engine (default: the
            process's one, shared by every local engine).
    """

    def __init__(
        self,
        open_runtime: Callable[[EngineOptions], Runtime],
        options: EngineOptions,
        lane: ComputeLane | None = None,
    ):
        self._open_runtime = open_runtime
        self.options = options
        self._lane = lane if lane is not None else shared_lane()
        self._cond = self._lane.cond  # one lock for the lane and its engines
        self._pending: deque[Job] = deque()
        self._commands: deque[_Command] = deque()
        self._started = False
        self._stopped = threading.Event()
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
            self._cond.notify_all()
            started = self._started
        if started:
            self._stopped.wait()

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

    # -- lane thread: the engine's turns --------------------------------------

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._lane.join(self)
        else:
            self._cond.notify_all()

    def ready(self) -> bool:
        """Whether a turn has work (called by the lane with its lock held)."""
        scheduler = self._scheduler
        return bool(
            self._pending or self._commands or self._closing or scheduler is None or scheduler.busy
        )

    def turn(self) -> bool:
        """Run one turn on the lane thread; ``False`` once the engine has stopped.

        The first turn opens the runtime. A turn that fails, or finds the engine
        closing, shuts it down (failing what it holds) before returning ``False``.
        """
        failure: BackendError | None = None
        try:
            if self._scheduler is None:
                try:
                    self._runtime = self._open_runtime(self.options)
                except BackendError as e:  # the context could not be created: its error says why
                    failure = e
                    return self._stop(failure)
                self._scheduler = Scheduler(self._runtime, self.options, self._stats)
            if self._step(self._scheduler):
                return True
        except Exception as e:
            if is_control_flow(e):
                raise
            failure = BackendError(
                f"the local engine failed ({type(e).__name__}: {e}); the requests it was "
                "serving failed with it and it accepts no more"
            )
            failure.__cause__ = e
        return self._stop(failure)

    def _stop(self, failure: BackendError | None) -> bool:
        try:
            self._shut_down(failure)
        except Exception:  # a job's on_done raised while being failed
            # Reported like an uncaught thread exception (before close() returns),
            # not raised: the lane thread goes on serving the other engines.
            threading.excepthook(threading.ExceptHookArgs((*sys.exc_info(), None)))
        finally:
            self._stopped.set()
        return False

    def _step(self, scheduler: Scheduler) -> bool:
        """Commands, admission and one batch; ``False``: the engine is closing."""
        with self._cond:
            if self._closing:
                return False
            commands = list(self._commands)
            self._commands.clear()
            pending = list(self._pending)
            self._pending.clear()
        for command in commands:
            command.run()
        scheduler.expire()
        now = time.perf_counter()
        live = []
        for job in pending:
            if job.cancelled.is_set():  # its caller left while it waited: no sequence for it
                stats = RequestStats(
                    prompt_tokens=len(job.prompt),
                    queue_wait_s=now - job.submitted_at,
                    priority=job.priority,
                )
                self._stats.finished(stats)
                job.on_done(JobEnd(finish="cancelled", stats=stats))
            else:
                live.append(job)
        ordered = admission_order(live, now)
        waiting = [job for job in ordered if not scheduler.admit(job)]
        if waiting:  # every sequence busy: retry after this step
            with self._cond:
                self._pending.extendleft(reversed(waiting))
        scheduler.step()
        return True

    def _shut_down(self, failure: BackendError | None) -> None:
        """Fail everything the engine holds (``failure``: it broke) and free the runtime."""
        with self._cond:
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
