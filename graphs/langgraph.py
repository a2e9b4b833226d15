"""LangGraph at plait's edge: plait and LangGraph, each usable from the other.

- **A LangGraph graph in a plait plan.** :func:`langgraph_tool` wraps a compiled
  graph (``StateGraph(...).compile()``) as a plait tool: a task of a plan run by
  ``EagerExecutor`` or ``LLMCompiler`` (beside ordinary tool tasks), a step of
  a steps workflow, or an agent's tool, always through the one tool pipeline.
  Its arguments are the graph's input state, its result the final state (or
  one key of it); see :mod:`plait.graphs.adapters._langgraph_task` for errors
  and interrupts.
- **A plait planner in a LangGraph graph.** :func:`planner_graph` (the same as
  :meth:`LLMCompiler.graph`; give it a LangGraph checkpointer) returns the
  planner loop as a compiled LangGraph graph over ``{"question": ...,
  "run_id": ...}`` whose state gathers the ``"rounds"``: run it with
  ``{"configurable": {"thread_id": run_id}}``, or add it as a node or subgraph
  of a larger graph. Approvals pause it with LangGraph's ``interrupt()``;
  ``Command(resume=...)`` goes on.

A YAML workflow's ``tools:`` entry may name a compiled graph (or a tool made
with :func:`langgraph_tool`) as ``function: module:attribute``.

Importing this module loads no LangGraph: ``langgraph_tool`` imports it when
it wraps a graph, and ``planner_graph`` is imported when first read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .adapters import langgraph_tool
from .compiler import LLMCompiler

if TYPE_CHECKING:
    from .compiler._langgraph_edge import planner_graph

__all__ = ["LLMCompiler", "langgraph_tool", "planner_graph"]


def __getattr__(name: str) -> Any:
    if name == "planner_graph":
        # Its module imports LangChain's runnables at load.
        from .compiler._langgraph_edge import planner_graph

        globals()[name] = planner_graph
        return planner_graph
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
