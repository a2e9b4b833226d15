"""Turning a validated :class:`WorkflowSpec` into backends, tools, memory and agents.

Nothing here touches a model: backends load lazily on their first request, and
the memory store opens on its first use.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, create_model

from plait._tasks import gather_or_raise
from plait.agents import Agent, AgentLimits, RemoteAgent, Runnable
from plait.backends import (
    Backend,
    CachedBackend,
    CacheStore,
    LocalBackend,
    OpenAIBackend,
    RetryPolicy,
)
from plait.backends.routing import (
    CostLedger,
    FallbackRouter,
    Price,
    Rule,
    RuleRouter,
    ThresholdRouter,
)
from plait.errors import ConfigError
from plait.memory import BackendEmbedder, ChromaStore, Memory, MemoryGuard, SourceKind, WritePolicy
from plait.policies import PolicySet, default_policies
from plait.tools import MCPClient, Tool, ToolSelection, Toolset, calculator, http_tools, tool

from ._cache import cache_store
from ._metering import Metered, RunLedger
from ._modules import import_tool_module
from ._schema import (
    A2AAgentSpec,
    AgentSpec,
    LocalBackendSpec,
    MCPToolSpec,
    MemorySpec,
    OpenAIBackendSpec,
    RouterBackendSpec,
    ToolSelectionSpec,
    WorkflowSpec,
)
from ._tools import document_tools, memory_tools

__all__ = [
    "Built",
    "backend_named",
    "build",
    "close_backends",
    "connected",
    "select_tools",
    "tool_selection",
]


@dataclass
class Built:
    """What a workflow file builds: named backends, tools, memory and agents.

    Shared by every run of the workflow, so it holds nothing a run counts (see
    :mod:`._metering`). MCP entries are empty here: their tools are known once
    their servers run, which :func:`connected` does for each run.
    ``aliases`` offers each function tool under its
    function's own name too (``hotel_price`` for ``price: {function:
    mytools:hotel_price}``) where no other tool has that name: agents, plans
    and steps that name it get it; ``tools`` (what a session offers) holds
    each tool once.
    """

    backends: dict[str, Backend]
    tools: Toolset
    entries: dict[str, Toolset]
    memory: Memory | None
    agents: dict[str, Agent[Any]]
    ledger: CostLedger
    mcp: dict[str, MCPToolSpec] = field(default_factory=dict)
    base_dir: Path = Path(".")
    policies: PolicySet = field(default_factory=PolicySet)
    aliases: dict[str, Tool] = field(default_factory=dict)
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
    where: Callable[[tuple[str | int, ...]], object] | None = None,
) -> Built:
    """Build everything ``spec`` declares; ``overrides`` replace backends by name (tests).

    ``where`` gives the position of a part of the file (a path of keys), so that
    an error building a tools entry says where the entry was written.

    Raises:
        ConfigError: a function tool cannot be imported, a folder does not exist...
    """
    prices = {
        n: Price(**b.price.model_dump())
        for n, b in spec.backends.items()
        if isinstance(b, OpenAIBackendSpec) and b.price is not None
    }
    budgets = [b for b in spec.backends.values() if isinstance(b, RouterBackendSpec)]
    ledger = RunLedger(
        prices={},  # filled below with backend names (known once built)
        budget=min((b.budget for b in budgets if b.budget is not None), default=None),
        agent_budgets={k: v for b in budgets for k, v in b.agent_budgets.items()},
    )
    cache_spec = spec.cache_spec
    cache = cache_store(cache_spec, base_dir) if cache_spec is not None else None
    wrap = _cached(cache, cache_spec.nondeterministic) if cache_spec and cache else None
    backends = _backends(spec, base_dir, overrides or {}, prices, ledger, wrap)
    memory = _memory(spec.memory, backends) if spec.memory else None
    mcp = {name: entry for name, entry in spec.tools.items() if isinstance(entry, MCPToolSpec)}
    entries: dict[str, Toolset] = {}
    for name, entry in spec.tools.items():
        if name in mcp:  # listed when its server runs (see connected)
            entries[name] = Toolset()
            continue
        try:
            entries[name] = _tool_entry(name, entry, base_dir, memory)
        except ConfigError as e:
            if where is None or e.location is not None:
                raise
            raise ConfigError(str(e), location=str(where(("tools", name)))) from e
    tools = Toolset(list(entries.values()))
    aliases: dict[str, Tool] = {}
    for name, entry in spec.tools.items():
        function = getattr(entry, "function", None)
        alias = function.partition(":")[2] if isinstance(function, str) else ""
        if alias and alias != name and alias not in tools and alias not in entries | aliases:
            aliases[alias] = entries[name][name].renamed(alias)
    policies = PolicySet(p.to_policy() for p in spec.policies)
    if spec.default_policies:
        policies = default_policies() + policies
    # Tools an MCP server will list are left out of these agents (the run's own
    # agents, built by ``connected``, have them).
    agents = {
        name: _agent(
            name,
            agent,
            backends,
            entries,
            memory,
            spec.memory,
            policies,
            aliases,
            partial=bool(mcp),
        )
        for name, agent in spec.agents.items()
        if isinstance(agent, AgentSpec)
    }
    remote = {
        name: _remote_agent(name, agent)
        for name, agent in spec.agents.items()
        if isinstance(agent, A2AAgentSpec)
    }
    return Built(
        backends,
        tools,
        entries,
        memory,
        agents,
        ledger,
        mcp,
        base_dir,
        policies,
        aliases,
        cache=cache,
        remote_agents=remote,
    )


@asynccontextmanager
async def connected(spec: WorkflowSpec, built: Built) -> AsyncIterator[Built]:
    """``built`` with its MCP servers' tools, for one run (or one ``plait mcp`` server).

    Every MCP server starts on entering (their tool lists are needed for the
    prompts and plans) and stops on leaving: one session per run. Agents are
    built again with the listed tools. Without MCP entries, ``built`` itself.
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
    clients = {name: _mcp_client(name, entry, built.base_dir) for name, entry in built.mcp.items()}
    try:
        listed = await gather_or_raise(client.tools() for client in clients.values())
        entries = dict(built.entries) | dict(zip(clients, listed, strict=True))
        _check_step_tools(spec, entries, built.aliases)
        agents = {
            name: _agent(
                name,
                agent,
                built.backends,
                entries,
                built.memory,
                spec.memory,
                built.policies,
                built.aliases,
            )
            for name, agent in spec.agents.items()
            if isinstance(agent, AgentSpec)
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


def select_tools(
    entries: Mapping[str, Toolset], name: str, aliases: Mapping[str, Tool] | None = None
) -> Toolset:
    """A tools entry by name, the one tool of that name from any entry, or an alias."""
    if name in entries:
        return entries[name]
    for toolset in entries.values():
        if name in toolset:
            return Toolset([toolset[name]])
    if aliases and name in aliases:
        return Toolset([aliases[name]])
    raise ConfigError(f"unknown tool {name!r}")


def backend_named(backends: Mapping[str, Backend], name: str | None) -> Backend:
    """The backend called ``name`` (``None``: the ``default`` entry, else the embedded model)."""
    return backends[name or "default"]


def _backends(
    spec: WorkflowSpec,
    base_dir: Path,
    overrides: Mapping[str, Backend],
    prices: dict[str, Price],
    ledger: CostLedger,
    cached: Callable[[Backend, Price], Backend] | None = None,
) -> dict[str, Backend]:
    def metered(name: str, backend: Backend) -> Backend:
        # A stand-in keeps the price its entry declares (budget tests rely on it).
        price = prices.get(name, Price())
        ledger.prices = {**ledger.prices, backend.name: price}
        # The cache sits on the model itself, below any router: every call, the
        # planner's and each agent's, reaches it, and its identity is the model's.
        return Metered(cached(backend, price) if cached else backend, price)

    # Overrides are leaves, ready before any router that names them; the file's
    # leaves next, then routers in an order where their members exist.
    built = {name: metered(name, backend) for name, backend in overrides.items()}
    pending = {name: body for name, body in spec.backends.items() if name not in built}
    while pending:
        progressed = False
        for name, body in list(pending.items()):
            if isinstance(body, LocalBackendSpec):
                built[name] = metered(name, _local(body, base_dir))
            elif isinstance(body, OpenAIBackendSpec):
                built[name] = metered(name, _openai(name, body))
            elif all(m in built for m in _router_members(body)):
                built[name] = _router(name, body, built, ledger)
            else:
                continue
            del pending[name]
            progressed = True
        if not progressed:
            raise ConfigError(f"routers refer to each other in a cycle: {', '.join(pending)}")
    if "default" not in built:
        built["default"] = metered("default", LocalBackend())
    return built


def _cached(store: CacheStore, nondeterministic: bool) -> Callable[[Backend, Price], Backend]:
    def wrap(backend: Backend, price: Price) -> Backend:
        return CachedBackend(backend, store, cache_nondeterministic=nondeterministic, price=price)

    return wrap


def _openai(name: str, body: OpenAIBackendSpec) -> Backend:
    return OpenAIBackend(
        body.model,
        base_url=body.base_url,
        api_key_env=body.api_key_env,
        headers=body.headers or None,
        timeout=body.timeout_s,
        max_response_bytes=body.max_response_bytes,
        retry=RetryPolicy(max_attempts=body.max_attempts),
        name=name,
    )


def _local(body: LocalBackendSpec, base_dir: Path) -> Backend:
    model = None
    if body.model is not None:
        model = Path(body.model) if Path(body.model).is_absolute() else base_dir / body.model
    return LocalBackend(
        model,
        n_ctx=body.n_ctx,
        n_threads=body.n_threads,
        temperature=body.temperature,
        n_seq_max=body.n_seq_max,
        type_k=body.kv_type_k,
        type_v=body.kv_type_v,
        prefix_cache=body.prefix_cache,
    )


def _router_members(body: RouterBackendSpec) -> list[str]:
    members = [*body.chain, *(r.backend for r in body.rules)]
    members += [m for m in (body.default, body.cheap, body.strong) if m is not None]
    return members


def _router(
    name: str, body: RouterBackendSpec, built: Mapping[str, Backend], ledger: CostLedger
) -> Backend:
    if body.policy == "fallback":
        return FallbackRouter([built[m] for m in body.chain], name=name, ledger=ledger)
    if body.policy == "rules":
        assert body.default is not None  # checked by validation
        rules = [
            Rule(
                built[r.backend], agent=r.agent, tags=tuple(r.tags), pattern=r.pattern, name=str(i)
            )
            for i, r in enumerate(body.rules, 1)
        ]
        return RuleRouter(rules, built[body.default], name=name, ledger=ledger)
    assert body.cheap is not None and body.strong is not None  # checked by validation
    return ThresholdRouter(
        built[body.cheap], built[body.strong], threshold=body.threshold, name=name, ledger=ledger
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


def _tool_entry(name: str, entry: Any, base_dir: Path, memory: Memory | None) -> Toolset:
    tools = _builtin_or_function(name, entry, base_dir, memory)
    extra = getattr(entry, "builtin", None) and entry.description
    if not extra:
        return tools
    return Toolset([dataclasses.replace(t, description=f"{t.description} {extra}") for t in tools])


def _builtin_or_function(name: str, entry: Any, base_dir: Path, memory: Memory | None) -> Toolset:
    builtin = getattr(entry, "builtin", None)
    if builtin == "calculator":
        return Toolset([calculator])
    if builtin == "files":
        root = Path(entry.root or ".")
        return document_tools(
            root if root.is_absolute() else base_dir / root, read_only=entry.read_only
        )
    if builtin == "http":
        return http_tools(entry.allowed_hosts, timeout_s=entry.timeout_s or 10.0)
    if builtin == "memory":
        assert memory is not None  # checked by validation
        return memory_tools(memory)
    built = _function_tool(name, entry.function, entry.description, entry.timeout_s, base_dir)
    if entry.examples:
        built = built.with_examples(
            [(e.request, e.arguments) for e in entry.examples]  # checked against the schema
        )
    return Toolset([built])


def _function_tool(
    name: str, target: str, description: str | None, timeout_s: float | None, base_dir: Path
) -> Tool:
    module_name, _, attribute = target.partition(":")
    module = import_tool_module(base_dir, module_name, tool=name)
    function = getattr(module, attribute, None)
    if function is None:
        raise ConfigError(f"tool {name!r}: module {module_name!r} has no {attribute!r}")
    if isinstance(function, Tool):
        return function.renamed(name)
    if not callable(function):
        raise ConfigError(f"tool {name!r}: {target} is not a function")
    return tool(name=name, description=description, timeout_s=timeout_s)(function)


class _RecalledNotes:
    """An agent's view of a workflow :class:`Memory` (the ``AgentMemory`` protocol)."""

    def __init__(self, memory: Memory, agent: str, k: int) -> None:
        self.memory = memory
        self.agent = agent
        self.k = k

    async def recall(self, query: str) -> Sequence[str]:
        result = await self.memory.recall(query, k=self.k)
        return [m.text for m in result.memories]

    async def remember(self, text: str, *, metadata: Mapping[str, str] | None = None) -> None:
        await self.memory.remember(text, source="agent", writer=self.agent, metadata=metadata)


def _remote_agent(name: str, body: A2AAgentSpec) -> RemoteAgent:
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


def _agent(
    name: str,
    body: AgentSpec,
    backends: dict[str, Backend],
    entries: Mapping[str, Toolset],
    memory: Memory | None,
    memory_spec: MemorySpec | None,
    policies: PolicySet,
    aliases: Mapping[str, Tool],
    *,
    partial: bool = False,
) -> Agent[Any]:
    output_type = _output_model(name, body.output) if body.output is not None else None
    names = body.tools
    if partial:
        known = {n for toolset in entries.values() for n in toolset.names}
        names = [t for t in names if t in entries or t in known or t in aliases]
    notes = None
    if body.memory and memory is not None and memory_spec is not None:
        notes = _RecalledNotes(memory, name, memory_spec.recall_k)
    return Agent(
        name,
        body.instructions,
        backend_named(backends, body.backend),
        tools=[select_tools(entries, t, aliases) for t in names],
        output_type=output_type,
        memory=notes,
        shared_context=body.shared_context,
        limits=AgentLimits(
            max_steps=body.max_steps, max_turn_tokens=body.max_turn_tokens, timeout_s=body.timeout_s
        ),
        tool_choice=body.tool_choice,
        tool_selection=tool_selection(body.tool_selection),
        max_tool_rounds=body.max_tool_rounds,
        temperature=body.temperature,
        policies=policies,
        mode=body.mode,
    )


_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


def _output_model(agent: str, schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model for an object JSON Schema (flat properties; nested values stay JSON)."""
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise ConfigError(
            f"agent {agent!r}: output must be a JSON Schema of type 'object' with 'properties'"
        )
    required = set(schema.get("required", schema["properties"]))
    fields: dict[str, Any] = {}
    for prop, body in schema["properties"].items():
        kind = body.get("type", "string") if isinstance(body, dict) else "string"
        python = _JSON_TYPES.get(kind, Any)
        if isinstance(body, dict) and "enum" in body:
            from typing import Literal

            python = Literal[tuple(body["enum"])]
        fields[prop] = (python, ...) if prop in required else (python | None, None)
    return create_model(f"{agent.title().replace('-', '')}Output", **fields)


def tool_selection(spec: ToolSelectionSpec | None) -> ToolSelection | None:
    """The SDK selection of a ``tool_selection`` entry (``None``: the backend's default)."""
    if spec is None:
        return None
    return ToolSelection(
        policy=spec.policy,
        k=spec.k,
        margin=spec.margin,
        fix_margin=spec.fix_margin,
        examples=spec.examples,
    )


async def close_backends(backends: Mapping[str, Backend]) -> None:
    """Close every backend (connections, engines)."""
    await asyncio.gather(*(b.aclose() for b in backends.values()), return_exceptions=True)
