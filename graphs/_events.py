"""What an executor reports: per-task events and the outcome of a run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["RunResult", "TaskEvent", "TaskOutcome", "TaskStatus"]

TaskStatus = Literal["done", "failed", "skipped"]


class TaskEvent(BaseModel):
    """Something that happened to a task, ``at`` seconds after the run started.

    Kinds: ``planned`` (the task arrived), ``started``, ``retrying``,
    ``finished``, ``failed``, ``skipped`` (a dependency failed or approval was
    refused), ``restored`` (a resumed run reused its stored result).
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["planned", "started", "retrying", "finished", "failed", "skipped", "restored"]
    task_id: str
    tool: str
    at: float
    duration_s: float | None = None
    attempt: int = 1
    error: str | None = None


class TaskOutcome(BaseModel):
    """How one task ended."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    tool: str
    status: TaskStatus
    result: Any = None
    error: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None


class RunResult(BaseModel):
    """Every task's outcome and the events of the run, in order."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    outcomes: dict[str, TaskOutcome]
    events: tuple[TaskEvent, ...] = ()
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(o.status == "done" for o in self.outcomes.values())

    @property
    def results(self) -> dict[str, Any]:
        """Results of the tasks that finished."""
        return {i: o.result for i, o in self.outcomes.items() if o.status == "done"}
