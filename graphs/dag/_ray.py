"""Scale-out on Ray: the eager executor with task bodies running on a Ray cluster.

There is no second scheduler. :class:`RayExecutor` is an :class:`EagerExecutor`
whose runner sends each task attempt to Ray as a remote call and awaits it as
an asyncio future, so eager start, concurrency limits, retries, timeouts,
approvals and durable results are the local executor's own code. A cancelled
or timed-out attempt cancels its Ray task. Ray is an optional extra
(``pip install 'plait[ray]'``) imported only when a run starts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

from plait import tracing
from plait.errors import ConfigError

from ._config import TaskRunner
from ._executor import EagerExecutor
from ._plan import Task

__all__ = ["RayExecutor", "RayTaskRunner"]

_lock = threading.Lock()
_remote_fn: Any = None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ConfigError("executor 'ray' needs Ray installed: pip install 'plait[ray]'") from e
    return ray


class _Raised:
    """An exception raised by a task body, carried back to the driver to re-raise as is."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Traced:
    """A worker's answer with the spans it recorded, for the driver's trace."""

    def __init__(self, value: Any, spans: list[dict[str, Any]]) -> None:
        self.value = value
        self.spans = spans


def _run_task_body(
    runner: TaskRunner,
    task: dict[str, Any],
    args: dict[str, Any],
    parent: dict[str, str] | None = None,
) -> Any:
    """What a Ray worker executes: one attempt of one task.

    With ``parent`` (the driver records a trace), the attempt runs in a
    ``plait.worker`` span under the driver's task span, and every span made here
    goes back with the answer to be written into the run's trace.
    """

    async def attempt() -> Any:
        return await runner(Task.model_validate(task), args)

    def answer() -> Any:
        try:
            return asyncio.run(attempt())
        except Exception as e:  # handed back so the driver sees the task's own error
            return _Raised(e)

    if parent is None:
        return answer()
    with tracing.collect_under(parent) as collected:
        with tracing.span(
            "plait.worker",
            {"plait.task.id": task.get("id"), "process.pid": os.getpid(),
             "host.name": socket.gethostname()},
        ) as span:  # fmt: skip
            value = answer()
            if isinstance(value, _Raised):
                span.fail(value.error)
    return _Traced(value, collected.records)


def _remote(ray: Any) -> Any:
    global _remote_fn
    with _lock:
        if _remote_fn is None:
            # Ray must not retry on its own: retries are the executor's policy,
            # and a silently repeated attempt would run a tool twice.
            _remote_fn = ray.remote(max_retries=0, retry_exceptions=False)(_run_task_body)
        return _remote_fn


class RayTaskRunner:
    """Wrap a :data:`TaskRunner` so that each call runs as a Ray task.

    The runner is shipped to the workers once per Ray session (cloudpickle):
    tools must be importable there or defined by value (functions of a script's
    ``__main__`` are). Results and exceptions come back unchanged.

    Args:
        runner: the task runner to run remotely.
        address: Ray cluster to connect to when Ray is not initialised yet
            (``None``: start a local one; ``"auto"``: the cluster of ``ray start``).
        num_cpus: CPUs one task reserves on its worker.
        init_kwargs: extra arguments for ``ray.init`` (when this starts Ray).
    """

    def __init__(
        self,
        runner: TaskRunner,
        *,
        address: str | None = None,
        num_cpus: float = 1.0,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.runner = runner
        self.address = address
        self.num_cpus = num_cpus
        self.init_kwargs = dict(init_kwargs or {})
        self._shipped: tuple[str, Any] | None = None

    def _runner_ref(self, ray: Any) -> Any:
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_kwargs)
        session = ray.get_runtime_context().get_job_id()
        if self._shipped is None or self._shipped[0] != session:
            self._shipped = (session, ray.put(self.runner))
        return self._shipped[1]

    async def __call__(self, task: Task, args: dict[str, Any]) -> Any:
        ray = _import_ray()
        runner = self._runner_ref(ray)
        ref = (
            _remote(ray)
            .options(num_cpus=self.num_cpus, name=f"plait.task:{task.tool}")
            .remote(runner, task.model_dump(mode="json"), args, tracing.remote_parent())
        )
        try:
            result = await ref
        except asyncio.CancelledError:
            # A timeout or a stopped run stops the remote attempt too. Forcefully:
            # a sync tool runs in a worker thread that an interrupt cannot reach,
            # so the worker process is ended (Ray starts a fresh one).
            ray.cancel(ref, force=True)
            raise
        if isinstance(result, _Traced):
            tracing.replay(result.spans)
            result = result.value
        if isinstance(result, _Raised):
            raise result.error
        return result


class RayExecutor(EagerExecutor):
    """An :class:`EagerExecutor` whose tasks run on a Ray cluster.

    Scheduling stays in the driver (eager start, limits, retries, timeouts,
    durable store); each task attempt runs in a Ray worker process, so
    CPU-bound tools run in parallel across cores and nodes.

    Args:
        runner: runs one task (see :func:`plait.graphs.task_runner`).
        address: Ray cluster address (see :class:`RayTaskRunner`).
        num_cpus: CPUs reserved per task.
        init_kwargs: extra ``ray.init`` arguments when this starts Ray.
        **kwargs: the :class:`EagerExecutor` options (``max_concurrency``,
            ``tool_limits``, ``timeout_s``, ``retry``, ``retries``, ``store``, ...).
    """

    def __init__(
        self,
        runner: TaskRunner,
        *,
        address: str | None = None,
        num_cpus: float = 1.0,
        init_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        remote = RayTaskRunner(runner, address=address, num_cpus=num_cpus, init_kwargs=init_kwargs)
        super().__init__(remote, **kwargs)
