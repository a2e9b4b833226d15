"""Approval of a round's flagged tasks: the request a paused round sends, and reading answers.

A task flagged ``requires_approval`` (or held by a policy) without a decision
is held by the executor: it does not run, nor its dependants, and the
execution lists it in ``RunResult.awaiting``. The loop then pauses with one
request for all of them (:func:`approval_request`) and goes on once an answer
(:func:`parse_answer`) is stored in the round's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from plait.errors import PlanError

from ..dag import Approval, RunResult

__all__ = ["approval_request", "asked_tasks", "parse_answer"]


def approval_request(run: RunResult, run_id: str, round_number: int) -> dict[str, Any]:
    """``{"type": "approval", "run_id", "round", "tasks"}`` for the tasks ``run`` holds."""
    tools = {o.task_id: o.tool for o in run.outcomes.values()}
    tools.update({e.task_id: e.tool for e in run.events})
    # A task held by a policy (not flagged by the plan) says which one and why.
    held = {v.task_id: v.message for v in run.violations if v.action == "require_approval"}
    return {
        "type": "approval",
        "run_id": run_id,
        "round": round_number,
        "tasks": [
            {
                "task_id": task_id,
                "tool": tools.get(task_id, ""),
                "args": args,
                **({"policy": held[task_id]} if task_id in held else {}),
            }
            for task_id, args in run.awaiting.items()
        ],
    }


def asked_tasks(request: Mapping[str, Any]) -> dict[str, Any]:
    """The tasks an approval request asks about, by id, with their arguments."""
    return {str(t["task_id"]): t.get("args", {}) for t in request.get("tasks", ())}


def parse_answer(answer: Any, awaiting: Mapping[str, Any]) -> dict[str, Approval]:
    """Decisions from a reviewer's answer.

    Accepted: one decision for every task asked about (``True``/``"approve"``,
    ``False``/``"reject"``, or an :class:`Approval` or its dict), or a mapping
    from task id to such a decision (tasks left out are asked about again).

    Raises:
        PlanError: the answer is not a decision, or names a task not awaiting approval.
    """
    if isinstance(answer, Approval | bool | str) or (
        isinstance(answer, Mapping) and "action" in answer
    ):
        decision = _decision(answer, None)
        return {task_id: decision for task_id in awaiting}
    if not isinstance(answer, Mapping):
        raise PlanError(
            f"the approval answer {answer!r} is not a decision: resume with True/False,"
            ' "approve"/"reject", {"action": "approve" | "reject" | "edit", "reason": ...,'
            ' "args": {...}}, or a mapping from task id to one of these'
        )
    unknown = sorted(set(map(str, answer)) - set(awaiting))
    if unknown:
        raise PlanError(
            f"the approval answer names task(s) {', '.join(unknown)}, but only"
            f" {', '.join(awaiting)} await approval"
        )
    return {str(task_id): _decision(value, str(task_id)) for task_id, value in answer.items()}


def _decision(value: Any, task_id: str | None) -> Approval:
    if isinstance(value, Approval):
        return value
    if isinstance(value, bool):
        return Approval(action="approve" if value else "reject")
    if value in ("approve", "reject"):
        return Approval(action=value)
    try:
        return Approval.model_validate(value)
    except ValidationError as e:
        raise PlanError(
            f"the approval answer {value!r} is not a decision ({e})", task_id=task_id
        ) from e
