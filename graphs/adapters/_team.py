"""Teams on the DAG executor: a supervisor's workers as tasks of one plan.

``plait.agents.Supervisor`` decides what to run (agents may not import graphs);
:func:`dag_dispatch` gives it the eager executor as its way of running workers,
so a team's subtasks get the executor's scheduling, events and result store:
each subtask is a task whose arguments reference the results it needs, so it
starts the moment they are accepted and independent subtasks run in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from plait.agents import Dispatch, Subtask

from ..dag import EagerExecutor, Plan, ResultStore, Task, TaskEvent

__all__ = ["dag_dispatch"]

_WORKER = "team_worker"


def dag_dispatch(
    *,
    max_concurrency: int = 64,
    store: ResultStore | None = None,
    on_event: Callable[[TaskEvent], None] | None = None,
) -> Dispatch:
    """A :data:`~plait.agents.Dispatch` that runs a supervisor's workers on :class:`EagerExecutor`.

    Args:
        max_concurrency: workers running at once.
        store: where worker results are persisted (default: in memory).
        on_event: receives the executor's task events (planned, started, finished, ...).
    """

    async def dispatch(
        subtasks: Sequence[Subtask],
        work: Callable[[Subtask, Mapping[str, str]], Any],
    ) -> None:
        by_id = {s.id: s for s in subtasks}

        async def runner(task: Task, args: dict[str, Any]) -> Any:
            inputs = {k: str(v) for k, v in args.get("inputs", {}).items()}
            return await work(by_id[task.id], inputs)

        tasks = tuple(
            Task(id=s.id, tool=_WORKER, args={"inputs": {n: f"${{{n}}}" for n in s.needs}})
            for s in subtasks
        )
        # A worker that is not accepted raises WorkerFailed inside the runner; the
        # executor records it as a failed task and skips its dependants, which is
        # what the supervisor's dispatch contract asks for. A usage error (a
        # misconfigured worker) ends the dispatch and propagates instead.
        executor = EagerExecutor(
            runner,
            max_concurrency=max_concurrency,
            store=store,
            on_event=on_event,
            stop_on_usage_error=True,
        )
        await executor.run(Plan(tasks=tasks), known_tools=[_WORKER])

    return dispatch
