"""Plans as DAGs and the executors that run them.

The bottom room of ``plait.graphs``: plans and their parser, ``$n`` references,
task events and outcomes, result stores, the eager executor
(each task starts the moment its inputs are ready; its settings one frozen
``ExecutorConfig``), the Ray executor and static runs. It imports only the
plait core (and networkx); agents, tools and LangGraph live above it.
"""

from plait._lazy import moved_names

from ._config import Approver, ExecutorConfig, IdempotencyKey, TaskRunner
from ._events import Approval, RunResult, TaskEvent, TaskOutcome, TaskStatus
from ._executor import EagerExecutor
from ._functions import tool_runner
from ._plan import Plan, Task, ValidatedPlan
from ._plan_parser import StreamingPlanParser, parse_plan_stream
from ._ray import RayExecutor, RayTaskRunner
from ._references import find_references, substitute
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
    "parse_plan_stream",
    "run_directory",
    "run_static",
    "substitute",
    "tool_runner",
]

# Retrying moved to the core (one policy for HTTP requests, task attempts and
# fallbacks); the old names stay one release.
__getattr__ = moved_names(
    __name__,
    {
        "RetryPolicy": ("plait.retry:RetryPolicy", "plait.retry.RetryPolicy"),
        "is_transient": ("plait.retry:is_transient", "plait.retry.is_transient"),
    },
)
