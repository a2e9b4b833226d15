"""LangGraph at plait's edge: plait and LangGraph, each usable from the other.

- **A LangGraph graph in a plait plan.** :func:`langgraph_tool` wraps a compiled
  graph (``StateGraph(...).compile()``) as a plait tool: a task of a plan run by
  ``EagerExecutor`` or ``LLMCompiler`` (beside ordinary tool tasks), a step of
  a steps workflow, or an agent's tool, always through the one tool pipeline.
  Its arguments are the graph's input state, its result the final state (or
  one key of it); see :mod:`plait.graphs.adapters._langgraph_task` for errors
  and interrupts.
- **A plait planner in a LangGraph graph.** :meth:`LLMCompiler.graph` (give it
  a LangGraph checkpointer) returns the planner loop as a compiled LangGraph
  graph over ``{"question": ..., "run_id": ...}`` whose state gathers the
  ``"rounds"``: run it with ``{"configurable": {"thread_id": run_id}}``, or add
  it as a node or subgraph of a larger graph. Approvals pause it with LangGraph's
  ``interrupt()``; ``Command(resume=...)`` goes on.

A YAML workflow's ``tools:`` entry may name a compiled graph (or a tool made
with :func:`langgraph_tool`) as ``function: module:attribute``.
"""

from __future__ import annotations

from .adapters import langgraph_tool
from .compiler import LLMCompiler

__all__ = ["LLMCompiler", "langgraph_tool"]
