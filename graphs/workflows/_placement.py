"""Where the tasks of an ``executor: ray`` workflow run: Ray workers or the driver.

It imports no agents, tools or Ray when it loads (``plait validate`` reports
from it); the runner that sends tasks away is ``_kinds.placed``.

A task runs on a worker when what it needs can travel there: a plain tool (a
function or builtin, shipped by value or imported), or an agent whose backend
talks to a server or to Ray actors (OpenAI-compatible backends,
``RayModelPool``). A task stays in the driver process when it holds something
only the driver has: an in-process model (a local backend, or a router over
backends), the memory store's client, an MCP server's session, a LangGraph
graph (known once built: the file alone does not say), or an agent using one
of these.

:func:`ray_placement` answers from the file alone (``plait validate``);
:func:`driver_tasks` answers for a run, from the built objects, so backends
given in code (tests, ``backends=``) are judged by what they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._schema import (
    A2AAgentSpec,
    BuiltinToolSpec,
    MCPToolSpec,
    WorkflowSpec,
    builtin_tool_names,
)

if TYPE_CHECKING:
    from plait.agents import Runnable
    from plait.backends import Backend

    from ._build import Built

__all__ = ["backend_travels", "driver_tasks", "ray_placement"]


def backend_travels(backend: Backend) -> bool:
    """Whether ``backend`` works from a Ray worker: it holds no model in this process."""
    from plait.backends import WrappedBackend
    from plait.backends.openai import OpenAIBackend
    from plait.backends.ray import RayModelPool

    while isinstance(backend, WrappedBackend):  # meters and the like wrap the real one
        backend = backend.wrapped
    return isinstance(backend, OpenAIBackend | RayModelPool)


def _driver_tools(spec: WorkflowSpec, built: Built) -> set[str]:
    """Tools holding a driver-only resource: the memory store's client, an MCP session,
    a LangGraph graph (which does not survive the trip: see ``LANGGRAPH_TAG``)."""
    from ..adapters import LANGGRAPH_TAG  # a run's built objects: loaded already

    names: set[str] = set()
    for entry, tool_spec in spec.tools.items():
        if getattr(tool_spec, "builtin", None) == "memory" or entry in built.mcp:
            names.update(t.name for t in built.entries.get(entry, ()))
    for tool in [*built.tools, *built.aliases.values()]:
        if LANGGRAPH_TAG in tool.tags:
            names.add(tool.name)
    return names


def driver_tasks(spec: WorkflowSpec, built: Built, agents: Iterable[Runnable]) -> set[str]:
    """The tool and agent names (of ``built`` and ``agents``) that must run in the driver.

    Remote (A2A) agents stay too: a worker would only relay the call.
    """
    from plait.agents import Agent

    tools = _driver_tools(spec, built)
    stay = set(tools)
    for agent in agents:
        if not isinstance(agent, Agent):
            stay.add(agent.name)
            continue
        declared = spec.agents.get(agent.name)
        uses_driver_tool = any(t.name in tools for t in agent.tools)
        if getattr(declared, "memory", False) or uses_driver_tool:
            stay.add(agent.name)
        elif not backend_travels(agent.backend):
            stay.add(agent.name)
    return stay


def ray_placement(spec: WorkflowSpec) -> tuple[list[str], dict[str, str]]:
    """From the file alone: the agents that run on workers, and what stays on the
    driver (tool or agent name -> why)."""
    driver: dict[str, str] = {}
    tool_entries: dict[str, str] = {}  # an entry, or a tool it names, -> why it stays
    for entry, tool_spec in spec.tools.items():
        if isinstance(tool_spec, BuiltinToolSpec) and tool_spec.builtin == "memory":
            driver[entry] = "memory tools hold the store's client"
            provided, why = builtin_tool_names(tool_spec), "memory"
        elif isinstance(tool_spec, MCPToolSpec):
            driver[entry] = "an MCP server's session is the driver's"
            provided, why = tool_spec.include or [], "MCP"
        else:
            continue
        tool_entries.update({name: why for name in [entry, *provided]})
    workers: list[str] = []
    for name, agent in spec.agents.items():
        if isinstance(agent, A2AAgentSpec):
            driver[name] = "it is a remote A2A agent (the call is an HTTP request)"
            continue
        backend = spec.backends.get(agent.backend or "default")
        kind = getattr(backend, "kind", None)
        held = [tool_entries[t] for t in agent.tools if t in tool_entries]
        if agent.memory:
            driver[name] = "it uses the workflow's memory"
        elif held:
            driver[name] = f"it uses {held[0]} tools"
        elif kind == "openai":
            workers.append(name)
        elif kind == "router":
            driver[name] = f"its backend {agent.backend!r} is a router (it keeps the run's ledger)"
        else:
            driver[name] = f"its backend {agent.backend or 'default'!r} is an in-process model"
    return workers, driver
