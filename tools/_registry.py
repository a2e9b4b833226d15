"""Toolsets: named collections of tools that can be namespaced, filtered and combined."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from plait.chat import ToolSpec
from plait.errors import ConfigError

from ._tool import Tool, tool

__all__ = ["Toolset"]


class Toolset:
    """An ordered set of tools with unique names.

    Plain functions are wrapped with :func:`tool` on the way in. Toolsets are
    immutable: :meth:`namespaced`, :meth:`filter` and ``+`` return new ones.

    Args:
        tools: tools, functions, or other toolsets to include.

    Raises:
        ConfigError: two tools share a name.
    """

    def __init__(self, tools: Iterable[Tool | Callable[..., Any] | Toolset] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            for one in item if isinstance(item, Toolset) else (item,):
                self._add(one if isinstance(one, Tool) else tool(one))

    def _add(self, item: Tool) -> None:
        if item.name in self._tools:
            raise ConfigError(
                f"two tools are named {item.name!r}; rename one or combine the toolsets "
                "under different namespaces (Toolset.namespaced)"
            )
        self._tools[item.name] = item

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(self._tools) or "(none)"
            raise KeyError(f"no tool named {name!r}; this toolset has: {known}") from None

    def __add__(self, other: Toolset | Iterable[Tool | Callable[..., Any]]) -> Toolset:
        return Toolset([self, other if isinstance(other, Toolset) else Toolset(other)])

    def __repr__(self) -> str:
        return f"Toolset({', '.join(self._tools)})"

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or ``None``."""
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        """Tool names, in order."""
        return list(self._tools)

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """Every tool as the model sees it."""
        return tuple(t.spec for t in self._tools.values())

    def namespaced(self, prefix: str) -> Toolset:
        """The same tools renamed ``prefix.name``, so toolsets from two sources can mix."""
        return Toolset(t.renamed(f"{prefix}.{t.name}") for t in self._tools.values())

    def filter(
        self,
        *,
        names: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        predicate: Callable[[Tool], bool] | None = None,
    ) -> Toolset:
        """The tools that pass every given criterion.

        Args:
            names: keep only these names (an unknown name is an error).
            tags: keep tools carrying at least one of these tags.
            predicate: keep tools for which it returns true.

        Raises:
            ConfigError: ``names`` lists a tool this toolset does not have.
        """
        wanted = None if names is None else list(names)
        if wanted is not None:
            unknown = [n for n in wanted if n not in self._tools]
            if unknown:
                raise ConfigError(
                    f"filter names unknown tool(s) {', '.join(map(repr, unknown))}; "
                    f"known: {', '.join(self._tools) or '(none)'}"
                )
        tag_set = None if tags is None else set(tags)
        kept = [
            t
            for t in self._tools.values()
            if (wanted is None or t.name in wanted)
            and (tag_set is None or t.tags & tag_set)
            and (predicate is None or predicate(t))
        ]
        return Toolset(kept)
