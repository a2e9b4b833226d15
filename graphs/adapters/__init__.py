"""Where agents and tools meet the DAG: task runners and the team dispatch.

``task_runner`` turns tools and agents into a runner for plans; ``dag_dispatch``
runs a supervisor's workers as tasks of the eager executor (agents may not
import graphs, so the bridge lives here); ``langgraph_tool`` makes a compiled
LangGraph graph a tool, so it can be a plan task beside other tools.
``UsageErrorStop`` is deprecated: ``EagerExecutor(..., stop_on_usage_error=True)``
does its job.
"""

from ._langgraph_task import LANGGRAPH_TAG, is_langgraph_graph, langgraph_tool
from ._runners import agent_spec, idempotency_keys, task_runner
from ._team import dag_dispatch
from ._usage import UsageErrorStop

__all__ = [
    "LANGGRAPH_TAG",
    "UsageErrorStop",
    "agent_spec",
    "dag_dispatch",
    "idempotency_keys",
    "is_langgraph_graph",
    "langgraph_tool",
    "task_runner",
]
