"""Durable results: what a finished task leaves in the store, and how a resumed run reads it.

A result is stored before any dependant can start, its sources first, so a
restored result never comes back without its provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plait.errors import PlanError
from plait.provenance import Source, tool_source

from ._events import TaskOutcome, task_outcome
from ._plan import Task
from ._store import ResultStore

__all__ = ["DurableResults"]


class DurableResults:
    """One run's tasks and results in its :class:`~plait.graphs.dag.ResultStore`.

    Args:
        store: the executor's store.
        run_id: the run's name in it.
    """

    __slots__ = ("run_id", "store", "stored")

    def __init__(self, store: ResultStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.stored: dict[str, Any] = {}  # results found when the execution started

    async def load(self) -> None:
        """Read the results an earlier execution of the run stored."""
        _, self.stored = await self.store.load(self.run_id)

    async def save_tasks(self, tasks: Sequence[Task]) -> None:
        """Record a whole plan's tasks in one write."""
        await self.store.save_tasks(self.run_id, tasks)

    async def save_task(self, task: Task) -> None:
        """Record one streamed task as it arrives."""
        await self.store.save_task(self.run_id, task)

    async def restored(self, task: Task, base: frozenset[Source]) -> TaskOutcome:
        """The outcome of a task whose result was stored before, with its sources."""
        found, value = await self.store.load_value(self.run_id, _sources_key(task.id))
        if found:
            sources = frozenset(Source.model_validate(v) for v in value)
        else:  # stored before provenance was recorded: as untrusted as a tool result
            sources = base | {tool_source(task.tool)}
        return task_outcome(task, "done", result=self.stored[task.id], sources=sources)

    async def save(self, task: Task, outcome: TaskOutcome) -> TaskOutcome:
        """Store a finished task's result; a result that cannot be stored fails its task.

        Returns:
            ``outcome``, or a failed outcome saying why the result could not be stored.
        """
        try:
            # The sources first: a stored result is never restored without them.
            await self.store.save_value(
                self.run_id,
                _sources_key(task.id),
                [s.model_dump() for s in sorted(outcome.sources, key=str)],
            )
            await self.store.save_result(self.run_id, task.id, outcome.result)
        except PlanError as e:
            return task_outcome(
                task,
                "failed",
                error=str(e),
                exception=e,
                attempts=outcome.attempts,
                started_at=outcome.started_at,
                finished_at=outcome.finished_at,
                sources=outcome.sources,
            )
        return outcome


def _sources_key(task_id: str) -> str:
    return f"sources:{task_id}"
