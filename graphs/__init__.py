"""Plans as DAGs, the eager executor that runs them, and YAML workflows.

``LLMCompiler`` is the plan -> execute -> join -> replan loop, as a LangGraph
graph. ``load_workflow`` reads a YAML workflow file (``WorkflowSpec`` is its
schema) into a runnable ``Workflow``.
"""

from ._compiler import CompilerResult, LLMCompiler, Round, tool_runner
from ._events import RunResult, TaskEvent, TaskOutcome, TaskStatus
from ._executor import Approver, EagerExecutor, TaskRunner
from ._plan import Plan, Task
from ._runners import agent_spec, task_runner
from ._runs import RunRecord, list_runs, new_run_id, read_run
from ._store import MemoryResultStore, ResultStore, SQLiteResultStore
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
    "Approver",
    "CompilerResult",
    "EagerExecutor",
    "LLMCompiler",
    "MemoryResultStore",
    "ModelCall",
    "Plan",
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
    "list_runs",
    "load_workflow",
    "new_run_id",
    "read_run",
    "task_runner",
    "tool_runner",
    "validate_workflow",
    "workflow_json_schema",
]
