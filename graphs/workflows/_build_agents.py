"""The ``agents:`` section built: each agent with its backend, tools, output type and memory.

An agent whose tools are all known when the file loads is built then, once,
and shared by every run. One that names an MCP entry, or a tool only an MCP
server can provide, is built once per run, when the run's servers have listed
their tools (``_mcp_run.connected``): it never exists without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.agents import Agent, AgentLimits, MemoryBinding, RemoteAgent
from plait.backends import Backend
from plait.memory import Memory
from plait.policies import PolicySet
from plait.tools import Tool, Toolset

from ._build_backends import backend_named
from ._build_tools import select_tools, tool_selection
from ._output_model import output_model
from ._schema import A2AAgentSpec, AgentSpec, MemorySpec

__all__ = ["build_agent", "build_remote_agent", "needs_run_tools"]


def needs_run_tools(
    body: AgentSpec,
    entries: Mapping[str, Toolset],
    aliases: Mapping[str, Tool],
    run_entries: Mapping[str, object],
) -> bool:
    """Whether the agent names tools that exist only while a run's MCP servers run.

    ``run_entries``: the tools entries whose tools a run lists (MCP servers).
    """
    known = {n for toolset in entries.values() for n in toolset.names} | set(aliases)
    return any(t in run_entries or (t not in entries and t not in known) for t in body.tools)


def build_agent(
    name: str,
    body: AgentSpec,
    backends: Mapping[str, Backend],
    entries: Mapping[str, Toolset],
    memory: Memory | None,
    memory_spec: MemorySpec | None,
    policies: PolicySet,
    aliases: Mapping[str, Tool],
) -> Agent[Any]:
    """The agent an ``agents`` entry declares, over built backends and tools.

    Its memory is a :class:`~plait.agents.MemoryBinding` of the workflow's
    memory: recalled notes keep their trust levels (so a low-trust note counts
    as untrusted data the run read), and an answer resting on untrusted data is
    stored with low trust.

    Raises:
        ConfigError: a tool it names is not in ``entries`` (nor an alias), its
            ``output`` is not an object schema, or its ``tool_choice`` names no tool.
    """
    binding = None
    if body.memory and memory is not None and memory_spec is not None:
        binding = MemoryBinding(memory, k=memory_spec.recall_k)
    return Agent(
        name,
        body.instructions,
        backend_named(backends, body.backend),
        tools=[select_tools(entries, t, aliases) for t in body.tools],
        output_type=output_model(name, body.output) if body.output is not None else None,
        memory=binding,
        shared_context=body.shared_context,
        limits=AgentLimits(
            max_steps=body.max_steps, max_turn_tokens=body.max_turn_tokens, timeout_s=body.timeout_s
        ),
        tool_choice=body.tool_choice,
        tool_selection=tool_selection(body.tool_selection),
        tool_sampling=body.tool_sampling,
        max_tool_rounds=body.max_tool_rounds,
        temperature=body.temperature,
        policies=policies,
        mode=body.mode,
    )


def build_remote_agent(name: str, body: A2AAgentSpec) -> RemoteAgent:
    """A remote A2A agent, called by the name the file gives it."""
    end = body.a2a
    return RemoteAgent(
        end.url,
        name=name,
        token=end.token,
        timeout_s=end.timeout_s,
        connect_timeout_s=end.connect_timeout_s,
        max_bytes=end.max_bytes,
        trust=end.trust,
    )
