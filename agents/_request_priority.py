"""The priority an agent's model requests carry, set by whoever runs the agent.

The DAG executor knows which tasks are on the critical path; the agent builds
the requests. A context variable carries the one value from the first to the
second (it follows asyncio tasks), so no agent signature changes for it.
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
