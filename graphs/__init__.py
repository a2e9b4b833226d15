"""Plans as DAGs, the eager executor that runs them, and YAML workflows.

``LLMCompiler`` is the plan -> execute -> join -> replan loop (durable by run
id, pausing for approval; ``LLMCompiler.graph()`` offers it as a LangGraph
graph); ``run_static`` runs a fixed plan (steps with ``depends_on``) on the
same executor; ``langgraph_tool`` makes a LangGraph graph a task of a plan
(``plait.graphs.langgraph`` gathers both directions of LangGraph use). ``load_workflow``
reads a YAML workflow file (``WorkflowSpec`` is its schema) into a runnable
``Workflow``.

Four rooms, each importing only the ones below it: ``dag`` (plans, references,
events, stores, the eager and Ray executors, static runs: plait core only),
``compiler`` (the LLMCompiler loop and approval, on ``dag``), ``adapters``
(agents and teams as DAG tasks, on ``dag``) and ``workflows`` (YAML files, on
all three).

The names load on first use, so ``plait validate`` (``validate_workflow``)
imports no more than it needs and starts quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plait._lazy import lazy_names

if TYPE_CHECKING:
    from .adapters import agent_spec, dag_dispatch, idempotency_keys, langgraph_tool, task_runner
    from .compiler import ApprovalGate, CompilerResult, LLMCompiler, Round
    from .dag import (
        Approval,
        Approver,
        EagerExecutor,
        ExecutorConfig,
        IdempotencyKey,
        MemoryResultStore,
        Plan,
        RayExecutor,
        RayTaskRunner,
        ResultStore,
        RunResult,
        SQLiteResultStore,
        Task,
        TaskEvent,
        TaskOutcome,
        TaskRunner,
        TaskStatus,
        ValidatedPlan,
        run_directory,
        run_static,
        tool_runner,
    )
    from .workflows import (
        ModelCall,
        RunRecord,
        UnreadableRun,
        ValidatedWorkflow,
        Workflow,
        WorkflowEvent,
        WorkflowResult,
        WorkflowSpec,
        list_runs,
        load_workflow,
        new_run_id,
        read_run,
        read_workflow,
        scan_runs,
        validate_workflow,
        workflow_json_schema,
    )

_HOMES = {
    "agent_spec": "adapters",
    "dag_dispatch": "adapters",
    "idempotency_keys": "adapters",
    "langgraph_tool": "adapters",
    "task_runner": "adapters",
    "ApprovalGate": "compiler",
    "CompilerResult": "compiler",
    "LLMCompiler": "compiler",
    "Round": "compiler",
    "Approval": "dag",
    "Approver": "dag",
    "EagerExecutor": "dag",
    "ExecutorConfig": "dag",
    "IdempotencyKey": "dag",
    "MemoryResultStore": "dag",
    "Plan": "dag",
    "RayExecutor": "dag",
    "RayTaskRunner": "dag",
    "ResultStore": "dag",
    "RunResult": "dag",
    "SQLiteResultStore": "dag",
    "Task": "dag",
    "TaskEvent": "dag",
    "TaskOutcome": "dag",
    "TaskRunner": "dag",
    "TaskStatus": "dag",
    "ValidatedPlan": "dag",
    "run_directory": "dag",
    "run_static": "dag",
    "tool_runner": "dag",
    "ModelCall": "workflows",
    "RunRecord": "workflows",
    "UnreadableRun": "workflows",
    "ValidatedWorkflow": "workflows",
    "Workflow": "workflows",
    "WorkflowEvent": "workflows",
    "WorkflowResult": "workflows",
    "WorkflowSpec": "workflows",
    "list_runs": "workflows",
    "load_workflow": "workflows",
    "new_run_id": "workflows",
    "read_run": "workflows",
    "read_workflow": "workflows",
    "scan_runs": "workflows",
    "validate_workflow": "workflows",
    "workflow_json_schema": "workflows",
}

__all__ = [
    "Approval",
    "ApprovalGate",
    "Approver",
    "CompilerResult",
    "EagerExecutor",
    "ExecutorConfig",
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
    "UnreadableRun",
    "ValidatedPlan",
    "ValidatedWorkflow",
    "Workflow",
    "WorkflowEvent",
    "WorkflowResult",
    "WorkflowSpec",
    "agent_spec",
    "dag_dispatch",
    "idempotency_keys",
    "langgraph_tool",
    "list_runs",
    "load_workflow",
    "new_run_id",
    "read_run",
    "read_workflow",
    "run_directory",
    "run_static",
    "scan_runs",
    "task_runner",
    "tool_runner",
    "validate_workflow",
    "workflow_json_schema",
]


# RetryPolicy moved to the core, plait.retry; the old name stays one release.
_MOVED = {"RetryPolicy": ("plait.retry:RetryPolicy", "plait.retry.RetryPolicy")}

__getattr__, __dir__ = lazy_names(__name__, _HOMES, _MOVED)
