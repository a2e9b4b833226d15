"""What an executor reports: per-task events and the outcome of a run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from plait.policies import Violation
from plait.provenance import Source, untrusted

from ._plan import Task

__all__ = [
    "Approval",
    "EventLog",
    "RunResult",
    "TaskEvent",
    "TaskOutcome",
    "TaskStatus",
    "task_outcome",
]

TaskStatus = Literal["done", "failed", "skipped"]


class Approval(BaseModel):
    """A reviewer's decision on a task flagged ``requires_approval``.

    Attributes:
        action: ``approve`` (run as planned), ``reject`` (do not run; dependants
            are skipped and the joiner sees the reason) or ``edit`` (run with
            some arguments replaced).
        reason: why, for a rejection (shown to the joiner).
        args: for ``edit``, the arguments to replace (others stay as resolved).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["approve", "reject", "edit"]
    reason: str | None = None
    args: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _edit_has_args(self) -> Approval:
        if self.action == "edit" and not self.args:
            raise ValueError("an 'edit' decision needs the arguments to change in 'args'")
        return self


class TaskEvent(BaseModel):
    """Something that happened to a task, ``at`` seconds after the run started.

    Kinds: ``planned`` (the task arrived), ``started``, ``retrying``,
    ``finished``, ``failed``, ``skipped`` (a dependency failed or approval was
    refused), ``restored`` (a resumed run reused its stored result),
    ``awaiting_approval`` (held until a reviewer decides), ``deduplicated`` (a
    side effect with the same idempotency key already happened; its stored
    result was reused), ``blocked`` (a policy refused the call; ``error`` says why).
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal[
        "planned",
        "started",
        "retrying",
        "finished",
        "failed",
        "skipped",
        "restored",
        "awaiting_approval",
        "deduplicated",
        "blocked",
    ]
    task_id: str
    tool: str
    at: float
    duration_s: float | None = None
    attempt: int = 1
    error: str | None = None


class TaskOutcome(BaseModel):
    """How one task ended.

    Attributes:
        error: why it failed or was skipped, as text (what a joiner and a trace see).
        exception: the exception behind a failure, so a caller can
            ``raise ... from outcome.exception``. It lives only in this process:
            it is left out of ``model_dump`` and JSON, so a stored or
            checkpointed outcome comes back with ``None`` here.
        sources: what the result derives from (its inputs' sources and the
            task's own: ``tool:<name>``, ``web``, ``agent:<name>``, ...).
        violation: the policy this task broke, when a policy refused it.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    task_id: str
    tool: str
    status: TaskStatus
    result: Any = None
    error: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    sources: frozenset[Source] = frozenset()
    violation: Violation | None = None
    exception: SkipJsonSchema[BaseException | None] = Field(default=None, exclude=True, repr=False)


def task_outcome(task: Task, status: TaskStatus, **fields: Any) -> TaskOutcome:
    """How ``task`` ended: ``status`` and the other :class:`TaskOutcome` fields."""
    return TaskOutcome(task_id=task.id, tool=task.tool, status=status, **fields)


class EventLog:
    """The events of one execution, timed from its start, in the order they happened.

    Args:
        on_event: also called with every event as it happens.
    """

    __slots__ = ("events", "on_event", "started")

    def __init__(self, on_event: Callable[[TaskEvent], None] | None = None) -> None:
        self.events: list[TaskEvent] = []
        self.on_event = on_event
        self.started = time.perf_counter()

    def now(self) -> float:
        """Seconds since the execution started."""
        return time.perf_counter() - self.started

    def emit(self, kind: Any, task: Task, **fields: Any) -> None:
        """Record that ``kind`` happened to ``task`` (and tell ``on_event``)."""
        at = time.perf_counter() - self.started
        event = TaskEvent(kind=kind, task_id=task.id, tool=task.tool, at=at, **fields)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)


class RunResult(BaseModel):
    """Every task's outcome and the events of the run, in order.

    Attributes:
        awaiting: tasks held for a reviewer's decision, with their resolved
            arguments (their dependants have not run either).
        violations: every call a policy refused, in order (tasks and the tool
            calls of agents running inside tasks), with the offending sources
            and the path the value took.
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    outcomes: dict[str, TaskOutcome]
    events: tuple[TaskEvent, ...] = ()
    wall_s: float = 0.0
    awaiting: dict[str, dict[str, Any]] = {}
    violations: tuple[Violation, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.awaiting and all(o.status == "done" for o in self.outcomes.values())

    @property
    def results(self) -> dict[str, Any]:
        """Results of the tasks that finished."""
        return {i: o.result for i, o in self.outcomes.items() if o.status == "done"}

    def untrusted_sources(self, task_ids: Any = None) -> list[Source]:
        """The untrusted sources the results of ``task_ids`` (default: every task) rest on."""
        chosen = self.outcomes if task_ids is None else {i: self.outcomes[i] for i in task_ids}
        return untrusted(s for o in chosen.values() if o.status == "done" for s in o.sources)
