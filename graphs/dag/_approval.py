"""The approval decision for a task flagged ``requires_approval`` (or held by a policy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._config import Approver
from ._events import Approval
from ._plan import Task

__all__ = ["approval_decision", "rejection_reason"]

_NO_APPROVER = Approval(action="reject", reason="no approver was configured")


async def approval_decision(
    task: Task,
    args: dict[str, Any],
    approvals: Mapping[str, Approval] | None,
    approver: Approver | None,
) -> Approval | None:
    """The reviewer's decision on ``task``, or ``None`` while it is awaited.

    Decisions given to the run win: with them, a task without one is held
    (``None``). Without them the executor's approver is asked; with neither,
    the task is rejected.
    """
    if approvals is not None:
        return approvals.get(task.id)
    if approver is None:
        return _NO_APPROVER
    answer = await approver(task, args)
    if isinstance(answer, Approval):
        return answer
    return Approval(action="approve" if answer else "reject")


def rejection_reason(decision: Approval) -> str:
    """The error text of a task its reviewer rejected."""
    reason = f": {decision.reason}" if decision.reason else ""
    return f"rejected by the reviewer{reason}"
