"""Cross-section references of a workflow file, checked on its raw data.

Agents -> backends and tools, steps -> agents, tools, inputs and other steps
(cycles), routers -> backends (cycles), planner -> tools, agents and backends,
supervisor -> backends, agents and earlier subtasks, memory users -> a memory
section. They are checked on the raw data, not the validated spec, so that they
are reported even when other parts of the file are invalid. This is the one
place router cycles are found: building trusts it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import ValidationError

from ..dag import find_references
from ._modules import module_problem
from ._problems import KeyPath, did_you_mean
from ._schema import BuiltinToolSpec, builtin_tool_names
from ._source import WorkflowSource

__all__ = ["check_references", "input_references", "value_at", "workflow_folder"]

_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def value_at(data: Any, path: Iterable[str | int]) -> Any:
    """The value at ``path`` in raw data, or ``None`` where a part is missing."""
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _ref(source: WorkflowSource, path: KeyPath, what: str, name: Any, known: Any) -> None:
    """Report ``name`` unless it is one of ``known``."""
    if not isinstance(name, str) or name in known:
        return
    hint = did_you_mean(name, known)
    if not hint:
        hint = f"known: {', '.join(sorted(known))}" if known else f"no {what}s are defined"
    source.add(path, f"unknown {what} {name!r}", hint)


class _AnyName(set[str]):
    """Known names that also admit any other string (tools an MCP server may list)."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tool_names(tools: dict[str, Any]) -> dict[str, str]:
    """Callable tool name -> the tools entry providing it.

    An MCP entry provides the tools its ``include`` lists; without one, its
    names are known only once the server runs (see :func:`_open_mcp`).
    A function tool is named after its entry, and also after its function where
    no other tool has that name (as ``_build`` offers it).
    """
    names: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for entry, body in tools.items():
        if isinstance(body, dict) and "mcp" in body:
            for name in body.get("include") or []:
                if isinstance(name, str):
                    names[name] = entry
        elif isinstance(body, dict) and "builtin" in body:
            try:
                spec = BuiltinToolSpec.model_validate(body)
            except ValidationError:
                continue
            for name in builtin_tool_names(spec):
                names[name] = entry
        else:
            names[entry] = entry
            function = body.get("function") if isinstance(body, dict) else None
            if isinstance(function, str) and _FUNCTION.match(function):
                aliases.setdefault(function.partition(":")[2], entry)
    for alias, entry in aliases.items():
        if alias not in names and alias not in tools:
            names[alias] = entry
    return names


def _open_mcp(tools: dict[str, Any]) -> bool:
    """Whether an MCP entry may provide any tool name (it has no ``include`` list).

    Then a tool name no entry is known to provide is not reported here: the
    run checks it against the servers' lists when it starts.
    """
    return any(
        isinstance(body, dict) and "mcp" in body and body.get("include") is None
        for body in tools.values()
    )


def workflow_folder(source: WorkflowSource) -> Path:
    """The folder of the workflow file, symlinks resolved."""
    try:
        return source.path.resolve().parent
    except (OSError, RuntimeError, ValueError):
        return source.path.absolute().parent


def _tool_entries(source: WorkflowSource, tools: dict[str, Any]) -> None:
    """A files tool's root stays inside the workflow's folder; function modules compile."""
    folder = workflow_folder(source)
    for name, body in tools.items():
        if not isinstance(body, dict):
            continue
        root = body.get("root")
        if body.get("builtin") == "files" and (root is None or isinstance(root, str)):
            _files_root(source, ("tools", name, "root" if root is not None else "builtin"), root)
        function = body.get("function")
        if isinstance(function, str) and _FUNCTION.match(function):
            problem = module_problem(folder, function.partition(":")[0])
            if problem:
                source.add(("tools", name, "function"), problem)


def _files_root(source: WorkflowSource, path: KeyPath, root: str | None) -> None:
    folder = workflow_folder(source)
    text = root or "."
    if "\x00" in text:
        source.add(path, "the files tool's root cannot contain a NUL character")
        return
    try:
        resolved = (folder / text).resolve()
    except (OSError, RuntimeError, ValueError):
        source.add(path, "the files tool's root cannot be resolved (a symlink loop?)")
        return
    if not resolved.is_relative_to(folder):
        source.add(
            path,
            f"the files tool's root {text!r} is outside the workflow's folder",
            "a workspace is a folder inside the workflow's folder (symlinks resolved), "
            "never the filesystem root or a folder above the workflow",
        )
    elif not resolved.is_dir():
        source.add(path, f"the files tool's folder {text!r} does not exist")


def check_references(source: WorkflowSource) -> None:
    """Record on ``source`` every reference of its data that names nothing."""
    data = source.data
    backends = _mapping(data.get("backends"))
    tools = _mapping(data.get("tools"))
    agents = _mapping(data.get("agents"))
    inputs = _mapping(data.get("inputs"))
    memory = data.get("memory")
    known_backends = set(backends) | {"default"}
    # A tools list may name an entry (all its tools) or one tool of an entry.
    offered = set(tools) | set(_tool_names(tools))
    if _open_mcp(tools):
        offered = _AnyName(offered)

    router_graph = nx.DiGraph()
    for name, body in backends.items():
        body = _mapping(body)
        if body.get("kind") != "router":
            continue
        targets: list[tuple[KeyPath, Any]] = []
        for i, member in enumerate(body.get("chain") or []):
            targets.append((("backends", name, "chain", i), member))
        for i, rule in enumerate(body.get("rules") or []):
            targets.append(
                (("backends", name, "rules", i, "backend"), _mapping(rule).get("backend"))
            )
        for key in ("default", "cheap", "strong"):
            if body.get(key) is not None:
                targets.append((("backends", name, key), body.get(key)))
        for path, target in targets:
            _ref(source, path, "backend", target, known_backends)
            if isinstance(target, str):
                router_graph.add_edge(name, target)
        policy = body.get("policy")
        if policy == "fallback" and not body.get("chain"):
            source.add(("backends", name), "a fallback router needs a non-empty 'chain'")
        if policy == "rules" and not body.get("default"):
            source.add(("backends", name), "a rules router needs a 'default' backend")
        if policy == "threshold" and not (body.get("cheap") and body.get("strong")):
            source.add(("backends", name), "a threshold router needs 'cheap' and 'strong'")
    _cycles(source, router_graph, "backends", "routers refer to each other in a cycle")

    for name, body in agents.items():
        body = _mapping(body)
        if "backend" in body:
            _ref(source, ("agents", name, "backend"), "backend", body["backend"], known_backends)
        for i, tool in enumerate(body.get("tools") or []):
            _ref(source, ("agents", name, "tools", i), "tool", tool, offered)
        if body.get("memory") is True and not isinstance(memory, dict):
            source.add(
                ("agents", name, "memory"), "the agent uses memory but there is no 'memory' section"
            )
    if isinstance(memory, dict):
        guard = _mapping(memory.get("guard"))
        if guard.get("judge") is not None:
            _ref(source, ("memory", "guard", "judge"), "backend", guard["judge"], set(backends))
        embedder = memory.get("embedder")
        if embedder not in (None, "default"):
            _ref(source, ("memory", "embedder"), "backend", embedder, set(backends))
    for name, body in tools.items():
        if _mapping(body).get("builtin") == "memory" and not isinstance(memory, dict):
            source.add(("tools", name), "the memory tools need a 'memory' section")
    _tool_entries(source, tools)

    workflow = _mapping(data.get("workflow"))
    kind = workflow.get("kind")
    if kind == "planner":
        for key in ("backend", "joiner"):
            if workflow.get(key) is not None:
                _ref(source, ("workflow", key), "backend", workflow[key], known_backends)
        for i, tool in enumerate(workflow.get("tools") or []):
            _ref(source, ("workflow", "tools", i), "tool", tool, offered)
        for i, agent in enumerate(workflow.get("agents") or []):
            _ref(source, ("workflow", "agents", i), "agent", agent, set(agents))
        _planner_approvals(source, workflow, tools)
        _inputs_used(source, ("workflow", "question"), workflow.get("question"), inputs)
    elif kind == "steps":
        _steps(source, workflow, agents, _tool_names(tools), inputs)
    elif kind == "supervisor":
        _team(source, workflow, known_backends, set(agents), inputs)


def _team(
    source: WorkflowSource,
    workflow: dict[str, Any],
    backends: set[str],
    agents: set[str],
    inputs: dict[str, Any],
) -> None:
    for key in ("backend", "reviewer"):
        if workflow.get(key) is not None:
            _ref(source, ("workflow", key), "backend", workflow[key], backends)
    for i, tier in enumerate(workflow.get("workers") or []):
        _ref(source, ("workflow", "workers", i), "backend", tier, backends)
    for i, agent in enumerate(workflow.get("agents") or []):
        _ref(source, ("workflow", "agents", i), "agent", agent, agents)
    for key in ("goal", "brief"):
        _inputs_used(source, ("workflow", key), workflow.get(key), inputs)
    plan = workflow.get("plan")
    offered = {a for a in workflow.get("agents") or [] if isinstance(a, str)}
    seen: set[str] = set()
    for i, sub in enumerate(plan if isinstance(plan, list) else []):
        if not isinstance(sub, dict):
            continue
        where: KeyPath = ("workflow", "plan", i)
        sid = sub.get("id")
        if sid in seen:
            source.add((*where, "id"), f"subtask id {sid!r} is used twice")
        _inputs_used(source, (*where, "task"), sub.get("task"), inputs)
        name = sub.get("agent")
        if name is not None and name in agents and name not in offered:
            source.add(
                (*where, "agent"),
                f"agent {name!r} is not offered to the supervisor",
                "add it to workflow.agents",
            )
        elif name is not None:
            _ref(source, (*where, "agent"), "agent", name, offered)
        elif "role" not in sub:
            source.add(where, "a subtask needs a 'role' or an 'agent' (from workflow.agents)")
        for j, need in enumerate(sub.get("needs") or []):
            if isinstance(need, str) and need not in seen:
                hint = did_you_mean(need, seen) or (
                    f"earlier subtasks: {', '.join(sorted(seen))}" if seen else "it is the first"
                )
                source.add(
                    (*where, "needs", j), f"subtask {need!r} is not an earlier subtask", hint
                )
        if isinstance(sid, str):
            seen.add(sid)


def _planner_approvals(
    source: WorkflowSource, workflow: dict[str, Any], tools: dict[str, Any]
) -> None:
    """``requires_approval`` names tools the planner is offered (or their entries)."""
    listed = {t for t in workflow.get("tools") or [] if isinstance(t, str)}
    planned = set(listed)
    for entry in listed & set(tools):  # an entry offers each of its tools
        planned.update(_tool_names({entry: tools[entry]}))
    if _open_mcp({entry: tools[entry] for entry in listed if entry in tools}):
        planned = _AnyName(planned)  # a listed MCP server may provide any name
    for i, name in enumerate(workflow.get("requires_approval") or []):
        if isinstance(name, str) and name not in planned:
            source.add(
                ("workflow", "requires_approval", i),
                f"requires_approval names {name!r}, which the planner is not offered",
                f"offered: {', '.join(sorted(planned))}"
                if planned
                else "list it under workflow.tools first",
            )


def input_references(value: Any) -> set[str]:
    """Input names referenced as ``${inputs.NAME}`` anywhere in ``value``."""
    return {r.split(".", 1)[1] for r in find_references(value) if r.startswith("inputs.")}


def _inputs_used(source: WorkflowSource, path: KeyPath, value: Any, inputs: dict[str, Any]) -> None:
    for name in sorted(input_references(value)):
        _ref(source, path, "input", name, set(inputs))


def _steps(
    source: WorkflowSource,
    workflow: dict[str, Any],
    agents: dict[str, Any],
    tool_names: dict[str, str],
    inputs: dict[str, Any],
) -> None:
    steps = [s for s in workflow.get("steps") or [] if isinstance(s, dict)]
    ids = [s.get("id") for s in steps]
    graph = nx.DiGraph()
    seen: set[Any] = set()
    for i, step in enumerate(workflow.get("steps") or []):
        if not isinstance(step, dict):
            continue
        where: KeyPath = ("workflow", "steps", i)
        sid = step.get("id")
        if sid in seen:
            source.add((*where, "id"), f"step id {sid!r} is used twice")
        seen.add(sid)
        graph.add_node(sid)
        has_agent, has_tool = "agent" in step, "tool" in step
        if has_agent == has_tool:
            source.add(where, "a step needs exactly one of 'agent' or 'tool'")
        if has_agent:
            _ref(source, (*where, "agent"), "agent", step["agent"], set(agents))
            if "args" in step:
                source.add((*where, "args"), "an agent step takes 'input', not 'args'", key=True)
        if has_tool:
            known = set(tool_names)
            if _open_mcp(_mapping(source.data.get("tools"))):
                known = _AnyName(known)
            _ref(source, (*where, "tool"), "tool", step["tool"], known)
            if "input" in step:
                source.add((*where, "input"), "a tool step takes 'args', not 'input'", key=True)
        refs: set[str] = set()
        for part in ("input", "args"):
            if part not in step:
                continue
            _inputs_used(source, (*where, part), step[part], inputs)
            named = {r for r in find_references(step[part]) if not r.startswith("inputs.")}
            for ref in sorted(named):
                _ref(source, (*where, part), "step", ref, {x for x in ids if isinstance(x, str)})
            refs |= named
        for j, dep in enumerate(step.get("depends_on") or []):
            _ref(
                source,
                (*where, "depends_on", j),
                "step",
                dep,
                {x for x in ids if isinstance(x, str)},
            )
        for dep in refs | set(step.get("depends_on") or []):
            if isinstance(dep, str) and dep in ids:
                graph.add_edge(dep, sid)
    output = workflow.get("output")
    if output is not None:
        _inputs_used(source, ("workflow", "output"), output, inputs)
        for ref in sorted(r for r in find_references(output) if not r.startswith("inputs.")):
            _ref(
                source, ("workflow", "output"), "step", ref, {x for x in ids if isinstance(x, str)}
            )
    _cycles(source, graph, "workflow.steps", "steps depend on each other in a cycle")


def _cycles(source: WorkflowSource, graph: nx.DiGraph, section: str, message: str) -> None:
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([str(a) for a, _ in cycle] + [str(cycle[0][0])])
    first = cycle[0][0]
    if section == "backends":
        where: KeyPath = ("backends", first)
    else:
        index = next(
            (
                i
                for i, s in enumerate(value_at(source.data, ("workflow", "steps")) or [])
                if isinstance(s, dict) and s.get("id") == first
            ),
            0,
        )
        where = ("workflow", "steps", index)
    source.add(where, f"{message}: {path}", "remove one of these dependencies")
