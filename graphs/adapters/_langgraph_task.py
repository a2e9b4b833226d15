"""A LangGraph graph as a plait tool: a task of a plan, or a tool of an agent.

:func:`langgraph_tool` wraps a compiled LangGraph graph (``StateGraph(...).compile()``,
any ``Pregel``) as a :class:`~plait.tools.Tool`. A plan task or an agent's turn
then calls it through the one tool pipeline (``ToolRunner``: permissions, the
arguments checked once, the time and output limits, an ``execute_tool`` span),
exactly like a Python tool.

How a call maps onto the graph:

- **Input.** The tool's arguments are the graph's input state, one argument per
  input key. Their schema is ``input_schema`` (a JSON Schema or a pydantic
  model), by default the graph's own (``graph.get_input_jsonschema()``); the
  checked arguments are what ``graph.ainvoke`` receives.
- **Output.** The graph's final state, or with ``output_key`` the value of that
  one key, as JSON data (pydantic models, LangChain messages included, become
  dicts), so a durable run can store it and a later task can use it as ``$n``.
- **Errors.** An exception raised in a node fails the call with a
  :class:`~plait.errors.ToolError` naming the graph and the node (the original
  chained). plait's own errors raised inside (a usage error, a spent budget)
  pass unchanged, so the run and its retries treat them as they always do.
- **Interrupts.** Called inside a LangGraph run (the plan runs in a node of a
  graph: yours, or a plait planner exposed as a LangGraph graph), the graph is
  that run's subgraph, by LangGraph's own rule: its ``interrupt()`` raises
  LangGraph's control-flow exception, which plait passes on untouched (see
  :func:`plait.errors.is_control_flow`), so the outer graph pauses, and
  ``Command(resume=...)`` on it gives the inner ``interrupt()`` its answer.
  Outside any LangGraph run nothing could resume the pause, so a graph that
  stops at an interrupt fails the call with a ``ToolError`` quoting what it asked.

LangGraph is imported when a graph is wrapped, not when this module loads, so
building a workflow without one never imports it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, PydanticUserError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from plait.errors import ConfigError, PlaitError, ToolError, is_control_flow
from plait.tools import Tool, schema_tool

if TYPE_CHECKING:
    from langgraph.pregel import Pregel

__all__ = ["LANGGRAPH_TAG", "is_langgraph_graph", "langgraph_tool"]

LANGGRAPH_TAG = "langgraph"
"""The tag of every tool :func:`langgraph_tool` makes.

A compiled graph does not survive pickling (LangGraph's sentinel objects lose
their identity in the copy), so a Ray placement keeps these tools on the driver.
"""

# The key under which ``ainvoke``'s result lists the interrupts a run stopped at
# (LangGraph keeps its constant private).
_INTERRUPTS = "__interrupt__"
# The note LangGraph adds to an exception raised in a node.
_NODE_NOTE = re.compile(r"During task with name '([^']+)'")


def is_langgraph_graph(value: object) -> bool:
    """Whether ``value`` is a compiled LangGraph graph (a ``Pregel``).

    Never imports LangGraph: an object can only be a graph once LangGraph is loaded.
    """
    pregel = sys.modules.get("langgraph.pregel")
    return pregel is not None and isinstance(value, pregel.Pregel)


def langgraph_tool(
    graph: Pregel,
    *,
    name: str,
    description: str,
    input_schema: Mapping[str, Any] | type[BaseModel] | None = None,
    output_key: str | None = None,
    config: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
) -> Tool:
    """A compiled LangGraph graph as a plait :class:`~plait.tools.Tool` (see the module).

    Args:
        graph: the compiled graph (``StateGraph(...).compile()``).
        name: the tool's name, as plans and models call it.
        description: what the graph does, for the planner or model.
        input_schema: the arguments, which are the graph's input state: a JSON
            Schema of an object, or a pydantic model (default: the graph's own
            input schema; give a small one for a graph of LangChain messages,
            whose own schema is some 20 KB of prompt).
        output_key: the state key whose value is the result (default: the whole
            final state).
        config: the LangGraph config of every call (``recursion_limit``, or the
            ``thread_id`` a graph compiled with its own checkpointer needs; every
            call then continues that one thread).
        timeout_s: the call's time limit, overriding the tool runner's default.

    Raises:
        ConfigError: ``graph`` is not a compiled LangGraph graph, its input
            schema cannot be read (give ``input_schema``), or ``output_key`` is
            not one of its output keys.
    """
    from langgraph.graph import StateGraph
    from langgraph.pregel import Pregel

    where = f"langgraph_tool({name!r})"
    if isinstance(graph, StateGraph):
        raise ConfigError(f"{where}: compile the graph first (StateGraph(...).compile())")
    if not isinstance(graph, Pregel):
        raise ConfigError(f"{where} needs a compiled LangGraph graph, got {type(graph).__name__}")
    parameters = _parameters(graph, input_schema, where)
    if output_key is not None:
        outputs = graph.output_channels
        keys = [outputs] if isinstance(outputs, str) else list(outputs)
        if output_key not in keys:
            raise ConfigError(
                f"{where}: output_key {output_key!r} is not a key of the graph's output"
                f" (keys: {', '.join(keys)})"
            )
    settings = dict(config or {})

    async def run_graph(**state: Any) -> Any:
        try:
            # A fresh copy each call: LangGraph fills a config in as it runs.
            final = await graph.ainvoke(state, dict(settings) or None)  # type: ignore[arg-type]
        except Exception as e:
            # Interrupts and commands steer the run around this call; plait's own
            # errors already say what went wrong, and how the run should treat it.
            if is_control_flow(e) or isinstance(e, PlaitError):
                raise
            raise ToolError(
                f"LangGraph graph {name!r} failed{_in_node(e)}: {type(e).__name__}: {e}"
            ) from e
        return _result(name, final, output_key)

    return schema_tool(
        name,
        parameters,
        description=description,
        fn=run_graph,
        timeout_s=timeout_s,
        tags=(LANGGRAPH_TAG,),
    )


def _parameters(
    graph: Pregel, input_schema: Mapping[str, Any] | type[BaseModel] | None, where: str
) -> dict[str, Any]:
    if isinstance(input_schema, type) and issubclass(input_schema, BaseModel):
        return input_schema.model_json_schema()
    if isinstance(input_schema, Mapping):
        return dict(input_schema)
    if input_schema is not None:
        raise ConfigError(
            f"{where}: input_schema must be a JSON Schema or a pydantic model,"
            f" got {type(input_schema).__name__}"
        )
    try:
        return dict(graph.get_input_jsonschema())
    except (PydanticUserError, TypeError, ValueError) as e:
        # pydantic cannot read some state types (typing.TypedDict before Python 3.12).
        raise ConfigError(
            f"{where}: cannot read the graph's input schema ({e}); give input_schema="
            " (a JSON Schema or a pydantic model of the input state)"
        ) from e


def _in_node(error: BaseException) -> str:
    for note in getattr(error, "__notes__", ()):
        found = _NODE_NOTE.search(str(note))
        if found:
            return f" in node {found.group(1)!r}"
    return ""


def _result(name: str, final: Any, output_key: str | None) -> Any:
    if isinstance(final, Mapping) and _INTERRUPTS in final:
        asked = [getattr(i, "value", i) for i in final[_INTERRUPTS]]
        raise ToolError(
            f"LangGraph graph {name!r} paused at interrupt() asking {asked!r}, and no"
            " LangGraph run around this call can resume it: run the plan inside a"
            " LangGraph graph's node (the interrupt then pauses that graph until"
            " Command(resume=...)), or let this graph finish without interrupting"
        )
    value = final
    if output_key is not None:
        if not isinstance(final, Mapping) or output_key not in final:
            held = ", ".join(map(str, final)) if isinstance(final, Mapping) else "no keys"
            raise ToolError(
                f"LangGraph graph {name!r} ended without {output_key!r} in its state"
                f" (it has: {held or 'no keys'})"
            )
        value = final[output_key]
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError as e:
        raise ToolError(
            f"LangGraph graph {name!r}: its result cannot be turned into JSON data ({e})"
        ) from e
