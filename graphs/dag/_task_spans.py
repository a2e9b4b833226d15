"""Task spans: one ``plait.task`` span per task, under the execution's ``plait.execute`` span.

A task's span covers its attempts only (opened once a concurrency slot is
held), so a timeline shows real work; a restored or skipped task gets a span of
no length. While tracing is off nothing here costs more than one test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait import tracing

from ._events import TaskOutcome
from ._plan import Task

__all__ = ["TaskSpans"]


class TaskSpans:
    """The spans of one execution's tasks.

    Args:
        run_id: recorded on every span.
    """

    __slots__ = ("by_task", "parent", "run_id")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.parent: tracing.Span | None = None  # the run's span (None: tracing is off)
        self.by_task: dict[str, tracing.Span] = {}

    @property
    def on(self) -> bool:
        """Whether the execution is traced."""
        return self.parent is not None

    def of(self, task: Task) -> tracing.Span | _NoSpan:
        """``task``'s span, started now if it has none yet."""
        span = self.by_task.get(task.id)
        if span is None and self.parent is not None:
            span = tracing.start_span(
                "plait.task",
                {
                    "plait.run_id": self.run_id,
                    "plait.task.id": task.id,
                    "plait.task.tool": task.tool,
                    "plait.task.dependencies": sorted(task.dependencies),
                },
                parent=self.parent,
            )
            if span is not None:
                self.by_task[task.id] = span
        return span if span is not None else _NO_SPAN

    def started(self, task: Task) -> tracing.Span | None:
        """``task``'s span, started now if it has none (``None`` while tracing is off)."""
        self.of(task)
        return self.by_task.get(task.id)

    def restored(self, task: Task) -> None:
        """A span of no length for a task a resumed run took from the store."""
        if self.parent is None:
            return
        span = self.of(task)
        span.set_attributes({"plait.task.status": "restored"})
        span.end()

    def ended(self, task: Task, outcome: TaskOutcome) -> None:
        """End ``task``'s span with how it ended (a skipped task's has no length)."""
        if self.parent is None:
            return
        span = self.of(task)
        span.set_attributes(
            {
                "plait.task.status": outcome.status,
                "plait.task.attempts": outcome.attempts,
                "plait.task.error": outcome.error,
            }
        )
        if outcome.status == "failed":
            span.fail(outcome.error or "failed")
        span.end()

    def paused(self, task: Task) -> None:
        """End the span of a task that raised a LangGraph interrupt (it runs again later)."""
        span = self.by_task.pop(task.id, None)
        if span is not None:
            span.end()


class _NoSpan:
    """Stands in for a task span while tracing is off."""

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        return None

    def fail(self, error: str) -> None:
        return None

    def end(self) -> None:
        return None


_NO_SPAN = _NoSpan()
