"""Plans as DAGs, the eager executor that runs them, and YAML workflows.

``LLMCompiler`` is the plan -> execute -> join -> replan loop, as a LangGraph
graph (checkpointed, with approval interrupts); ``run_static`` runs a fixed
plan (steps with ``depends_on``) on the same executor. ``load_workflow``
reads a YAML workflow file (``WorkflowSpec`` is its schema) into a runnable
``Workflow``.
"""

from ._approval import ApprovalGate
from ._compiler import CompilerResult, LLMCompiler, Round, tool_runner
from ._events import Approval, RunResult, TaskEvent, TaskOutcome, TaskStatus
from ._executor import Approver, EagerExecutor, IdempotencyKey, TaskRunner
from ._plan import Plan, Task
from ._ray import RayExecutor, RayTaskRunner
from ._runners import agent_spec, idempotency_keys, task_runner
from ._runs import RunRecord, list_runs, new_run_id, read_run
from ._static import run_static
from ._store import MemoryResultStore, ResultStore, SQLiteResultStore, run_directory
from ._team import dag_dispatch
from ._workflow import (
    Workflow,
    WorkflowEvent,
    WorkflowResult,
    load_workflow,
    validate_workflow,
)
from ._workflow_build import ModelCall
from ._workflow_schema import WorkflowSpec, workflow_json_schema

__all__ = [
    "Approval",
    "ApprovalGate",
    "Approver",
    "CompilerResult",
    "EagerExecutor",
    "IdempotencyKey",
    "LLMCompiler",
    "MemoryResultStore",
    "ModelCall",
    "Plan",
    "RayExecutor",
    "RayTaskRunner",
    "ResultStore",
    "Round",
    "RunRecord",
    "RunResult",
    "SQLiteResultStore",
    "Task",
    "TaskEvent",
    "TaskOutcome",
    "TaskRunner",
    "TaskStatus",
    "Workflow",
    "WorkflowEvent",
    "WorkflowResult",
    "WorkflowSpec",
    "agent_spec",
    "dag_dispatch",
    "idempotency_keys",
    "list_runs",
    "load_workflow",
    "new_run_id",
    "read_run",
    "run_directory",
    "run_static",
    "task_runner",
    "tool_runner",
    "validate_workflow",
    "workflow_json_schema",
]
