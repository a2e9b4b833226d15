"""YAML workflow files: schema, source positions, checks, build, runner and runs.

``load_workflow`` reads a file (``WorkflowSpec`` is its schema) into a runnable
``Workflow``; every run is recorded under ``.plait/runs/<run_id>/``.
"""

from ._metering import ModelCall
from ._runner import Workflow, WorkflowEvent, WorkflowResult, load_workflow, validate_workflow
from ._runs import RunRecord, UnreadableRun, list_runs, new_run_id, read_run, scan_runs
from ._schema import WorkflowSpec, workflow_json_schema

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
    "read_run",
    "scan_runs",
    "validate_workflow",
    "workflow_json_schema",
]
