"""YAML workflow files: schema, source positions, checks, build, runner and runs.

``load_workflow`` reads a file (``WorkflowSpec`` is its schema) into a runnable
``Workflow``; every run is recorded under ``.plait/runs/<run_id>/``. Names load
on first use: ``validate_workflow`` reads and checks a file without importing
the runner (agents, LangGraph).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plait._lazy import lazy_names

if TYPE_CHECKING:
    from ._checks import validate_workflow
    from ._metering import ModelCall
    from ._placement import ray_placement
    from ._runner import Workflow, WorkflowEvent, WorkflowResult, load_workflow
    from ._runs import RunRecord, UnreadableRun, list_runs, new_run_id, read_run, scan_runs
    from ._schema import WorkflowSpec, workflow_json_schema

_HOMES = {
    "ModelCall": "_metering",
    "RunRecord": "_runs",
    "UnreadableRun": "_runs",
    "Workflow": "_runner",
    "WorkflowEvent": "_runner",
    "WorkflowResult": "_runner",
    "WorkflowSpec": "_schema",
    "list_runs": "_runs",
    "load_workflow": "_runner",
    "new_run_id": "_runs",
    "ray_placement": "_placement",
    "read_run": "_runs",
    "scan_runs": "_runs",
    "validate_workflow": "_checks",
    "workflow_json_schema": "_schema",
}

__all__ = [
    "ModelCall",
    "RunRecord",
    "UnreadableRun",
    "Workflow",
    "WorkflowEvent",
    "WorkflowResult",
    "WorkflowSpec",
    "list_runs",
    "load_workflow",
    "new_run_id",
    "ray_placement",
    "read_run",
    "scan_runs",
    "validate_workflow",
    "workflow_json_schema",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
