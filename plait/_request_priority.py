"""The priority of the model requests made on behalf of a task (higher is served first).

The DAG executor knows which tasks are on the critical path; the requests are
built further down, by whatever the task runs: an agent's turns, a quarantined
extraction, a memory guard's judge. Between the two sits the task runner, a
plain ``(task, args)`` callable written by users, and below it user functions
that call agents or tools as they like, so a parameter could not be passed
through them. A context variable carries the one value instead (it follows
asyncio tasks and ``to_thread``), as the run's provenance and policies already
do; it lives in the core so that every layer that builds a request can read it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["current_request_priority", "requesting_priority"]

_PRIORITY: contextvars.ContextVar[int] = contextvars.ContextVar("plait_request_priority", default=0)


@contextmanager
def requesting_priority(priority: int) -> Iterator[None]:
    """Model requests built inside this block carry ``priority`` (higher first)."""
    token = _PRIORITY.set(priority)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


def current_request_priority() -> int:
    """The priority set by the innermost ``requesting_priority`` (0: neutral)."""
    return _PRIORITY.get()
