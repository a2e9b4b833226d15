"""MCP servers for the length of one run: start, list tools, build the agents that use them, stop.

Every MCP server starts when a run begins (its tool list goes into prompts and
plans) and stops when the run ends: one session per server per run, so
concurrent runs never share a server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from plait._tasks import gather_or_raise
from plait.errors import ConfigError
from plait.tools import MCPClient, Tool, Toolset

from ._build import Built
from ._build_agents import build_agent
from ._schema import AgentSpec, MCPToolSpec, WorkflowSpec

__all__ = ["connected"]


@asynccontextmanager
async def connected(built: Built) -> AsyncIterator[Built]:
    """``built`` with its MCP servers' tools, for one run (or one ``plait mcp`` server).

    Every MCP server starts on entering (their tool lists are needed for the
    prompts and plans) and stops on leaving. The agents using their tools are
    built here (their only build), with the listed tools. Without MCP entries,
    ``built`` itself.

    Remote (A2A) agents fetch their cards on the first run (descriptions for
    the prompts and plans); the cards are kept.

    Raises:
        ToolError: a server could not be started or listed its tools wrongly.
        ConfigError: a tool the file names is not listed by any server.
        RemoteAgentError: a remote agent's card could not be fetched or read.
    """
    unconnected = [a for a in built.remote_agents.values() if a.card is None]
    if unconnected:
        await gather_or_raise(a.aconnect() for a in unconnected)
    if not built.mcp:
        yield built
        return
    spec = built.spec
    clients = {name: _mcp_client(name, entry, built.base_dir) for name, entry in built.mcp.items()}
    try:
        listed = await gather_or_raise(client.tools() for client in clients.values())
        entries = dict(built.entries) | dict(zip(clients, listed, strict=True))
        _check_step_tools(spec, entries, built.aliases)
        run_agents = {
            name: build_agent(
                name,
                _local(spec, name),
                built.backends,
                entries,
                built.memory,
                spec.memory,
                built.policies,
                built.aliases,
            )
            for name in built.run_agents
        }
        # In the file's order, as an agent built at load would be.
        agents = {
            n: run_agents.get(n) or built.agents[n]
            for n in spec.agents
            if n in built.agents or n in run_agents
        }
        yield dataclasses.replace(
            built, entries=entries, tools=Toolset(list(entries.values())), agents=agents
        )
    finally:
        # Shielded: a cancelled run must still stop its servers.
        closing = asyncio.gather(*(c.aclose() for c in clients.values()), return_exceptions=True)
        await asyncio.shield(closing)


def _mcp_client(name: str, entry: MCPToolSpec, base_dir: Path) -> MCPClient:
    server = entry.mcp
    cwd = None
    if server.command is not None:
        folder = Path(server.cwd) if server.cwd is not None else Path(".")
        cwd = folder if folder.is_absolute() else base_dir / folder
    return MCPClient(
        server.command,
        url=server.url,
        name=name,
        cwd=cwd,
        env=server.env,
        headers=server.headers,
        include=entry.include,
        exclude=entry.exclude,
        timeout_s=entry.timeout_s,
        connect_timeout_s=server.connect_timeout_s,
    )


def _check_step_tools(
    spec: WorkflowSpec, entries: Mapping[str, Toolset], aliases: Mapping[str, Tool]
) -> None:
    steps = getattr(spec.workflow, "steps", None) or []
    available = [n for toolset in entries.values() for n in toolset.names] + list(aliases)
    for step in steps:
        if step.tool is not None and step.tool not in available:
            raise ConfigError(
                f"step {step.id!r} calls tool {step.tool!r}, which no tools entry provides "
                f"(tools: {', '.join(available) or 'none'})"
            )


def _local(spec: WorkflowSpec, name: str) -> AgentSpec:
    body = spec.agents[name]
    assert isinstance(body, AgentSpec)  # only local agents use tools
    return body
