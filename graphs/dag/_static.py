"""Static workflows: a fixed plan (steps with ``depends_on``, no planner) on the eager executor.

This is the SDK entry a YAML workflow loader calls. With a run id the run is
durable: results live in ``<runs_dir>/<run_id>/results.sqlite``, and calling
again with the same id resumes it (finished steps are reused, not rerun).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from plait.errors import PlanError

from ._config import TaskRunner
from ._events import Approval, RunResult
from ._executor import EagerExecutor
from ._plan import Plan
from ._store import SQLiteResultStore, run_directory

__all__ = ["run_static"]


async def run_static(
    plan: Plan,
    runner: TaskRunner,
    *,
    run_id: str | None = None,
    runs_dir: str | Path | None = None,
    known_tools: Iterable[str] | None = None,
    approvals: Mapping[str, Approval] | None = None,
    **executor_options: Any,
) -> RunResult:
    """Run a fixed plan on the eager executor, durably when it has a run id.

    Args:
        plan: the steps; validated as a whole before anything runs.
        runner: runs one step (e.g. from :func:`plait.graphs.task_runner`).
        run_id: makes the run durable and resumable (see the module docstring).
        runs_dir: the root of run folders (default: ``.plait/runs``).
        known_tools: names a step may call (``None``: do not check).
        approvals: reviewers' decisions by step id. When given, a step flagged
            ``requires_approval`` without a decision is held and listed in
            ``RunResult.awaiting``; call again with the same run id and the
            decisions to continue. Without it, the ``approver`` option decides.
        **executor_options: passed to :class:`EagerExecutor` (``max_concurrency``,
            ``tool_limits``, ``timeout_s``, ``retry``, ``retries``, ``retry_backoff_s``,
            ``approver``, ``idempotency``, ``on_event``).

    Raises:
        PlanError: the plan is invalid, or the run id was used for a different plan.
    """
    plan = plan.validate_against(known_tools)
    if run_id is None:
        return await EagerExecutor(runner, **executor_options).run(
            plan, known_tools=known_tools, approvals=approvals
        )
    store = SQLiteResultStore(run_directory(run_id, runs_dir) / "results.sqlite")
    try:
        stored, _ = await store.load(run_id)
        current = plan.by_id
        for task in stored:
            if current.get(task.id) != task:
                raise PlanError(
                    f"run {run_id!r} was started with a different plan (this step changed"
                    " or is gone); use a new run id",
                    task_id=task.id,
                )
        executor = EagerExecutor(runner, store=store, **executor_options)
        return await executor.run(plan, run_id=run_id, known_tools=known_tools, approvals=approvals)
    finally:
        store.close()
