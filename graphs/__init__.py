"""Plans as DAGs and the eager executor that runs them.

Coming with their issues: the planner and joiner loop on LangGraph, YAML
workflows and checkpoints.
"""

from ._events import RunResult, TaskEvent, TaskOutcome, TaskStatus
from ._executor import Approver, EagerExecutor, TaskRunner
from ._plan import Plan, Task
from ._store import MemoryResultStore, ResultStore, SQLiteResultStore

__all__ = [
    "Approver",
    "EagerExecutor",
    "MemoryResultStore",
    "Plan",
    "ResultStore",
    "RunResult",
    "SQLiteResultStore",
    "Task",
    "TaskEvent",
    "TaskOutcome",
    "TaskRunner",
    "TaskStatus",
]
