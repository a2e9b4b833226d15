"""Provenance: where a value came from, carried with it through plans, agents and memory.

Every value the executor and agents pass on has a set of :class:`Source`\\ s it
derives from: the user's question, the system (configuration), a tool's result
(``tool:<name>``), a web page (``web``), an MCP server (``mcp:<server>``), a
remote A2A agent (``a2a:<host>``), a recalled memory (``memory:<namespace>``
with the record's trust) or an agent's answer (``agent:<name>``). A value
computed from others carries the union of their sources; a source whose trust
is ``low`` makes the value *untrusted*.

Policies (:mod:`plait.policies`) read these sets before a call runs, in code,
never by asking a model.

A function (a tool, a task runner) says where its result came from by
returning :class:`Sourced`; code running inside an executor task or an agent
run reads the sources of what that task has read so far with :func:`current`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "SYSTEM",
    "USER",
    "Source",
    "Sourced",
    "TrustLevel",
    "a2a_source",
    "agent_source",
    "current",
    "describe",
    "matches",
    "memory_source",
    "parse_source",
    "reading",
    "sources_of",
    "tool_source",
    "untrusted",
    "unwrap",
]

TrustLevel = Literal["high", "medium", "low"]
"""How far a source is trusted; ``low`` sources are untrusted data."""

_TRUST_WORDS = frozenset({"high", "medium", "low"})
_DEFAULT_TRUST: dict[str, TrustLevel] = {
    "user": "high",
    "system": "high",
    "agent": "medium",
    "tool": "low",
    "web": "low",
    "mcp": "low",
    "a2a": "low",
    "memory": "medium",
}


class Source(BaseModel):
    """One origin of data.

    Attributes:
        kind: ``user``, ``system``, ``tool``, ``web``, ``mcp``, ``a2a``, ``memory``, ``agent``
            (or any other word a tool chooses).
        name: the tool, server, namespace, host or agent (``None`` for user/system/web).
        trust: how far it is trusted; ``low`` is untrusted data.
    """

    model_config = ConfigDict(frozen=True)

    kind: str
    name: str | None = None
    trust: TrustLevel = "low"

    def __str__(self) -> str:
        text = self.kind if self.name is None else f"{self.kind}:{self.name}"
        return text if self.kind != "memory" else f"{text}@{self.trust}"


USER = Source(kind="user", trust="high")
"""The person asking: the question and the literal arguments of a plan written from it."""

SYSTEM = Source(kind="system", trust="high")
"""The application's own configuration and instructions."""


def tool_source(name: str, trust: TrustLevel = "low") -> Source:
    """The result of a tool (untrusted unless the tool says otherwise)."""
    return Source(kind="tool", name=name, trust=trust)


def agent_source(name: str) -> Source:
    """An agent's answer (its trust comes from what it read, carried beside it)."""
    return Source(kind="agent", name=name, trust="medium")


def a2a_source(host: str, trust: TrustLevel = "low") -> Source:
    """The answer of a remote A2A agent on ``host`` (untrusted unless configured otherwise)."""
    return Source(kind="a2a", name=host, trust=trust)


def memory_source(namespace: str, trust: str) -> Source:
    """A recalled memory record of ``namespace`` with the record's trust (``low``: untrusted)."""
    level: TrustLevel = trust if trust in _TRUST_WORDS else "low"  # type: ignore[assignment]
    return Source(kind="memory", name=namespace, trust=level)


def parse_source(text: str) -> Source:
    """A source from its text form (``user``, ``tool:http_get``, ``memory:notes@low``)."""
    trust: str | None = None
    if "@" in text:
        text, trust = text.rsplit("@", 1)
    kind, _, name = text.partition(":")
    level: Any = trust if trust in _TRUST_WORDS else _DEFAULT_TRUST.get(kind, "low")
    return Source(kind=kind, name=name or None, trust=level)


def matches(pattern: str, source: Source) -> bool:
    """Whether a policy pattern names ``source``.

    Patterns: ``untrusted`` (any low-trust source), ``trusted`` (any other),
    ``kind`` (``web``, ``user``, ``tool``: every source of that kind),
    ``kind:name`` (``tool:http_get``, ``mcp:*``; shell-style wildcards) and
    ``kind:level`` (``memory:low``: sources of that kind with that trust).
    """
    if pattern == "untrusted":
        return source.trust == "low"
    if pattern == "trusted":
        return source.trust != "low"
    kind, _, rest = pattern.partition(":")
    if not fnmatchcase(source.kind, kind):
        return False
    if not rest:
        return True
    if rest in _TRUST_WORDS:
        return source.trust == rest
    return fnmatchcase(source.name or "", rest)


def untrusted(sources: Iterable[Source]) -> list[Source]:
    """The untrusted (low-trust) sources among ``sources``, sorted by their text."""
    return sorted((s for s in sources if s.trust == "low"), key=str)


def describe(sources: Iterable[Source]) -> str:
    """``sources`` as one sorted, comma-separated line (``(none)`` when empty)."""
    return ", ".join(sorted(str(s) for s in sources)) or "(none)"


@dataclass(frozen=True)
class Sourced:
    """A value together with the sources it derives from.

    A tool returns one to say where its result came from (``http_get`` says
    ``web``, ``memory_search`` names the records' namespaces and trust); a
    runner returns one to tell the executor the task's sources. Executors and
    agents unwrap it: the model and later tasks see ``value``.

    Attributes:
        value: the value itself.
        sources: what it derives from (empty: only from its inputs).
    """

    value: Any
    sources: frozenset[Source] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", frozenset(self.sources))


def unwrap(value: Any) -> tuple[Any, frozenset[Source] | None]:
    """``(value, sources)`` of a :class:`Sourced`; ``(value, None)`` for anything else."""
    if isinstance(value, Sourced):
        return value.value, value.sources
    return value, None


def sources_of(items: Iterable[Iterable[Source]]) -> frozenset[Source]:
    """The union of several source sets."""
    out: set[Source] = set()
    for item in items:
        out.update(item)
    return frozenset(out)


_READING: contextvars.ContextVar[frozenset[Source] | None] = contextvars.ContextVar(
    "plait_provenance_reading", default=None
)


def current() -> frozenset[Source] | None:
    """What the running task has read so far (``None``: not inside an executor task)."""
    return _READING.get()


@contextmanager
def reading(sources: Iterable[Source]) -> Iterator[frozenset[Source]]:
    """Mark code as working on data from ``sources`` (an executor task's inputs).

    An agent started inside starts its own run with these sources, so its tool
    calls are checked against what the task had read.
    """
    value = frozenset(sources)
    token = _READING.set(value)
    try:
        yield value
    finally:
        _READING.reset(token)
