"""Plans as DAGs and the eager executor that runs them.

``LLMCompiler`` is the plan -> execute -> join -> replan loop, as a LangGraph
graph (checkpointed, with approval interrupts); ``run_static`` runs a fixed
plan (steps with ``depends_on``) on the same executor.
"""

from ._approval import ApprovalGate
from ._compiler import CompilerResult, LLMCompiler, Round, tool_runner
from ._events import Approval, RunResult, TaskEvent, TaskOutcome, TaskStatus
from ._executor import Approver, EagerExecutor, IdempotencyKey, TaskRunner
from ._plan import Plan, Task
from ._ray import RayExecutor, RayTaskRunner
from ._runners import agent_spec, idempotency_keys, task_runner
from ._static import run_static
from ._store import MemoryResultStore, ResultStore, SQLiteResultStore, run_directory
from ._team import dag_dispatch

__all__ = [
    "Approval",
    "ApprovalGate",
    "Approver",
    "CompilerResult",
    "EagerExecutor",
    "IdempotencyKey",
    "LLMCompiler",
    "MemoryResultStore",
    "Plan",
    "RayExecutor",
    "RayTaskRunner",
    "ResultStore",
    "Round",
    "RunResult",
    "SQLiteResultStore",
    "Task",
    "TaskEvent",
    "TaskOutcome",
    "TaskRunner",
    "TaskStatus",
    "agent_spec",
    "dag_dispatch",
    "idempotency_keys",
    "run_directory",
    "run_static",
    "task_runner",
    "tool_runner",
]
