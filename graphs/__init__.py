"""Plans as DAGs and the eager executor that runs them.

``LLMCompiler`` is the plan -> execute -> join -> replan loop, as a LangGraph
graph. Coming with their issues: YAML workflows and agents as tasks.
"""

from ._compiler import CompilerResult, LLMCompiler, Round, tool_runner
from ._events import RunResult, TaskEvent, TaskOutcome, TaskStatus
from ._executor import Approver, EagerExecutor, TaskRunner
from ._plan import Plan, Task
from ._ray import RayExecutor, RayTaskRunner
from ._runners import agent_spec, task_runner
from ._store import MemoryResultStore, ResultStore, SQLiteResultStore

__all__ = [
    "Approver",
    "CompilerResult",
    "EagerExecutor",
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
    "task_runner",
    "tool_runner",
]
