"""The ``tools:`` section built: built-in sets, ``module:function`` tools, their aliases.

A ``module:attribute`` entry may name a function, a plait :class:`Tool`, or a
compiled LangGraph graph (made a tool by ``langgraph_tool``).

An MCP entry is an empty :class:`Toolset` here: its tools are known once its
server runs, which ``_mcp_run.connected`` does for each run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from plait.errors import ConfigError
from plait.memory import Memory
from plait.tools import Tool, ToolSelection, Toolset, calculator, http_tools, tool

from ..adapters import is_langgraph_graph, langgraph_tool
from ._modules import import_tool_module
from ._problems import KeyPath
from ._schema import MCPToolSpec, ToolSelectionSpec, WorkflowSpec
from ._tools import document_tools, memory_tools

__all__ = ["build_tool_entries", "select_tools", "tool_aliases", "tool_selection"]


def build_tool_entries(
    spec: WorkflowSpec,
    base_dir: Path,
    memory: Memory | None,
    where: Callable[[KeyPath], object] | None = None,
) -> dict[str, Toolset]:
    """Each tools entry's tools, by entry name (an MCP entry: empty until its server runs).

    ``where`` gives the position of a part of the file, so that an error
    building an entry says where the entry was written.

    Raises:
        ConfigError: a function tool cannot be imported, a folder does not exist...
    """
    entries: dict[str, Toolset] = {}
    for name, entry in spec.tools.items():
        if isinstance(entry, MCPToolSpec):  # listed when its server runs
            entries[name] = Toolset()
            continue
        try:
            entries[name] = _tool_entry(name, entry, base_dir, memory)
        except ConfigError as e:
            if where is None or e.location is not None:
                raise
            raise ConfigError(str(e), location=str(where(("tools", name)))) from e
    return entries


def tool_aliases(spec: WorkflowSpec, entries: Mapping[str, Toolset]) -> dict[str, Tool]:
    """Each function tool under its function's own name, where no other tool has it."""
    offered = Toolset(list(entries.values()))
    aliases: dict[str, Tool] = {}
    for name, entry in spec.tools.items():
        function = getattr(entry, "function", None)
        alias = function.partition(":")[2] if isinstance(function, str) else ""
        if alias and alias != name and alias not in offered and alias not in {**entries, **aliases}:
            aliases[alias] = entries[name][name].renamed(alias)
    return aliases


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
    if is_langgraph_graph(function):
        # A compiled LangGraph graph: its input state is the arguments, its final
        # state the result (see adapters/_langgraph_task.py).
        return langgraph_tool(
            function, name=name, description=description or "", timeout_s=timeout_s
        )
    if not callable(function):
        raise ConfigError(f"tool {name!r}: {target} is not a function")
    return tool(name=name, description=description, timeout_s=timeout_s)(function)
