"""Plans as DAGs and the executors that run them.

The bottom room of ``plait.graphs``: plans and their parser, ``$n`` references,
task events and outcomes, retry policies, result stores, the eager executor
(each task starts the moment its inputs are ready; its settings one frozen
``ExecutorConfig``), the Ray executor and static runs. It imports only the
plait core (and networkx); agents, tools and LangGraph live above it.
"""

from ._config import Approver, ExecutorConfig, IdempotencyKey, TaskRunner
from ._events import Approval, RunResult, TaskEvent, TaskOutcome, TaskStatus
from ._executor import EagerExecutor
from ._functions import tool_runner
from ._plan import Plan, Task, ValidatedPlan
from ._plan_parser import StreamingPlanParser, parse_plan_stream
from ._ray import RayExecutor, RayTaskRunner
from ._references import find_references, substitute
from ._retry import RetryPolicy, is_transient
from ._static import run_static
from ._store import MemoryResultStore, ResultStore, SQLiteResultStore, run_directory

__all__ = [
    "Approval",
    "Approver",
    "EagerExecutor",
    "ExecutorConfig",
    "IdempotencyKey",
    "MemoryResultStore",
    "Plan",
    "RayExecutor",
    "RayTaskRunner",
    "ResultStore",
    "RetryPolicy",
    "RunResult",
    "SQLiteResultStore",
    "StreamingPlanParser",
    "Task",
    "TaskEvent",
    "TaskOutcome",
    "TaskRunner",
    "TaskStatus",
    "ValidatedPlan",
    "find_references",
    "is_transient",
    "parse_plan_stream",
    "run_directory",
    "run_static",
    "substitute",
    "tool_runner",
]
