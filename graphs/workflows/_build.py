"""Turning a validated :class:`WorkflowSpec` into backends, tools, memory and agents.

Nothing here touches a model: backends load lazily on their first request, and
the memory store opens on its first use. Each section has its builder:
``_build_backends`` (models and routers), ``_build_tools`` (tools entries),
``_build_agents`` (agents), ``_mcp_run`` (MCP servers, for each run).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.agents import Agent, RemoteAgent, Runnable
from plait.backends import Backend, CacheStore
from plait.memory import BackendEmbedder, ChromaStore, Memory, MemoryGuard, SourceKind, WritePolicy
from plait.policies import PolicySet, default_policies
from plait.tools import Tool, Toolset

from ._build_agents import build_agent, build_remote_agent, needs_run_tools
from ._build_backends import build_backends, router_ledger
from ._build_tools import build_tool_entries, tool_aliases
from ._cache import cache_store
from ._metering import RunLedger
from ._problems import KeyPath
from ._schema import AgentSpec, MCPToolSpec, MemorySpec, WorkflowSpec

__all__ = ["Built", "build"]


@dataclass
class Built:
    """What a workflow file builds: named backends, tools, memory and agents.

    Shared by every run of the workflow, so it holds nothing a run counts (see
    :mod:`._metering`). MCP entries are empty here: their tools are known once
    their servers run, which ``_mcp_run.connected`` does for each run; the
    agents using them (``run_agents``) are built then, and are not in
    ``agents`` before. ``aliases`` offers each function tool under its
    function's own name too (``hotel_price`` for ``price: {function:
    mytools:hotel_price}``) where no other tool has that name: agents, plans
    and steps that name it get it; ``tools`` (what a session offers) holds
    each tool once.
    """

    spec: WorkflowSpec
    backends: dict[str, Backend]
    tools: Toolset
    entries: dict[str, Toolset]
    memory: Memory | None
    agents: dict[str, Agent[Any]]
    ledger: RunLedger
    mcp: dict[str, MCPToolSpec] = field(default_factory=dict)
    base_dir: Path = Path(".")
    policies: PolicySet = field(default_factory=PolicySet)
    aliases: dict[str, Tool] = field(default_factory=dict)
    run_agents: frozenset[str] = frozenset()
    cache: CacheStore | None = None
    remote_agents: dict[str, RemoteAgent] = field(default_factory=dict)

    @property
    def runnables(self) -> dict[str, Runnable]:
        """Every agent a step, plan or team may call: the local ones and the remote (A2A) ones."""
        return {**self.agents, **self.remote_agents}


def build(
    spec: WorkflowSpec,
    base_dir: Path,
    overrides: Mapping[str, Backend] | None = None,
    where: Callable[[KeyPath], object] | None = None,
) -> Built:
    """Build everything a validated ``spec`` declares; ``overrides`` replace backends by name.

    ``where`` gives the position of a part of the file (a path of keys), so that
    an error building a tools entry says where the entry was written.

    Raises:
        ConfigError: a function tool cannot be imported, a folder does not exist...
    """
    ledger = router_ledger(spec)
    cache_spec = spec.cache_spec
    cache = cache_store(cache_spec, base_dir) if cache_spec is not None else None
    backends = build_backends(spec, base_dir, overrides or {}, ledger, cache)
    memory = _memory(spec.memory, backends) if spec.memory else None
    mcp = {name: entry for name, entry in spec.tools.items() if isinstance(entry, MCPToolSpec)}
    entries = build_tool_entries(spec, base_dir, memory, where)
    aliases = tool_aliases(spec, entries)
    policies = PolicySet(p.to_policy() for p in spec.policies)
    if spec.default_policies:
        policies = default_policies() + policies
    local = {name: body for name, body in spec.agents.items() if isinstance(body, AgentSpec)}
    run_agents = frozenset(
        name for name, body in local.items() if needs_run_tools(body, entries, aliases, mcp)
    )
    agents = {
        name: build_agent(name, body, backends, entries, memory, spec.memory, policies, aliases)
        for name, body in local.items()
        if name not in run_agents
    }
    remote = {
        name: build_remote_agent(name, body)
        for name, body in spec.agents.items()
        if not isinstance(body, AgentSpec)
    }
    return Built(
        spec,
        backends,
        Toolset(list(entries.values())),
        entries,
        memory,
        agents,
        ledger,
        mcp,
        base_dir,
        policies,
        aliases,
        run_agents,
        cache,
        remote,
    )


def _memory(body: MemorySpec, backends: Mapping[str, Backend]) -> Memory:
    store = ChromaStore(host=body.host, port=body.port) if body.host else ChromaStore(body.path)
    embedder = None if body.embedder == "default" else BackendEmbedder(backends[body.embedder])
    guard = None
    if body.guard is not None:
        quarantine = frozenset(SourceKind(s) for s in body.guard.quarantine)
        judge = backends[body.guard.judge] if body.guard.judge else None
        guard = MemoryGuard(
            judge,
            embedder=embedder,
            policy=WritePolicy(quarantine_sources=quarantine),
            strict=body.guard.strict,
        )
    return Memory(body.namespace, store=store, embedder=embedder, guard=guard)
