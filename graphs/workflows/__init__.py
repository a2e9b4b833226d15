"""YAML workflow files: schema, source positions, checks, build, runner and runs.

``read_workflow`` reads and validates a file (``WorkflowSpec`` is its schema)
into a ``ValidatedWorkflow``, once; ``load_workflow`` builds that (or a path,
read first) into a runnable ``Workflow``; every run is recorded under
``.plait/runs/<run_id>/``. Names load on first use: ``read_workflow`` and
``validate_workflow`` read and check a file without importing the runner
(agents, LangGraph).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plait._lazy import lazy_names

if TYPE_CHECKING:
    from ._checks import ValidatedWorkflow, read_workflow, validate_workflow
    from ._metering import ModelCall
    from ._placement import ray_placement
    from ._runner import Workflow, WorkflowEvent, WorkflowResult, load_workflow
    from ._runs import RunRecord, UnreadableRun, list_runs, new_run_id, read_run, scan_runs
    from ._schema import WorkflowSpec, workflow_json_schema

_HOMES = {
    "ModelCall": "_metering",
    "RunRecord": "_runs",
    "UnreadableRun": "_runs",
    "ValidatedWorkflow": "_checks",
    "Workflow": "_runner",
    "WorkflowEvent": "_runner",
    "WorkflowResult": "_runner",
    "WorkflowSpec": "_schema",
    "list_runs": "_runs",
    "load_workflow": "_runner",
    "new_run_id": "_runs",
    "ray_placement": "_placement",
    "read_run": "_runs",
    "read_workflow": "_checks",
    "scan_runs": "_runs",
    "validate_workflow": "_checks",
    "workflow_json_schema": "_schema",
}

__all__ = [
    "ModelCall",
    "RunRecord",
    "UnreadableRun",
    "ValidatedWorkflow",
    "Workflow",
    "WorkflowEvent",
    "WorkflowResult",
    "WorkflowSpec",
    "list_runs",
    "load_workflow",
    "new_run_id",
    "ray_placement",
    "read_run",
    "read_workflow",
    "scan_runs",
    "validate_workflow",
    "workflow_json_schema",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
