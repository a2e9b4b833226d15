"""Reading workflow YAML with positions: plain data plus ``file:line:column`` for every key.

PyYAML's composer gives nodes with start marks; we turn the node tree into plain
Python values and keep, for each path (a tuple of keys and indexes), where its key
and its value were written. ``${NAME}`` in scalar values is replaced from the
environment (outside the ``workflow`` section, where ``${...}`` refers to inputs
and steps); substituted values are remembered so messages never show them.
``include:`` pulls in the sections of other files, each keeping its own positions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from plait._secrets import Redactor

__all__ = ["Position", "Problem", "Source", "read_source"]

Path_ = tuple[str | int, ...]

# Only these top-level sections may come from an included file: they define
# reusable things (agents and what they need), never a second workflow.
INCLUDABLE = ("backends", "tools", "memory", "agents")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_FREE_SECTIONS = ("workflow",)


@dataclass(frozen=True)
class Position:
    """Where something was written (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow file.

    Attributes:
        position: where it is.
        key: the dotted path of the offending key (``agents.writer.backend``).
        message: what is wrong.
        hint: how to fix it ("did you mean 'writer'?"), or "".
    """

    position: Position
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = (
            f"{self.position}: {self.key}: {self.message}"
            if self.key
            else (f"{self.position}: {self.message}")
        )
        return f"{text} ({self.hint})" if self.hint else text


@dataclass
class Source:
    """A workflow file read into plain data, with positions and problems found so far.

    Attributes:
        path: the main file.
        data: the merged document (includes applied).
        keys: path -> where the key was written.
        values: path -> where the value starts.
        problems: syntax, include and environment problems.
        secrets: values that came from the environment (long ones are never shown).
    """

    path: Path
    data: dict[str, Any] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)
    values: dict[Path_, Position] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)

    def where(self, path: Path_, *, key: bool = False) -> Position:
        """The position of ``path``, or of its nearest ancestor that has one."""
        table = (self.keys, self.values) if key else (self.values, self.keys)
        probe = tuple(path)
        while probe:
            for positions in table:
                if probe in positions:
                    return positions[probe]
            probe = probe[:-1]
        return Position(str(self.path), 1, 1)

    def add(self, path: Path_, message: str, hint: str = "", *, key: bool = False) -> None:
        """Record a problem at ``path``."""
        self.problems.append(
            Problem(self.where(path, key=key), dotted(path), self.redact(message), hint)
        )

    def redact(self, text: str) -> str:
        """``text`` with environment-substituted values hidden (see :mod:`plait._secrets`)."""
        return self.redactor.text(text)

    @property
    def redactor(self) -> Redactor:
        """What hides this file's secrets wherever a run writes or prints."""
        return Redactor(self.secrets)


def dotted(path: Path_) -> str:
    """``("agents", "writer", "tools", 0)`` -> ``agents.writer.tools[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_source(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Source:
    """Read ``path`` and its includes. Problems are collected, never raised."""
    source = Source(Path(path))
    environ = os.environ if env is None else env
    _read_into(source, Path(path), environ, stack=())
    return source


def _read_into(
    source: Source, path: Path, env: Mapping[str, str], stack: tuple[Path, ...], at: Path_ = ()
) -> None:
    document = _compose(source, path, at)
    if document is None:
        return
    shown = str(path)
    if not isinstance(document, yaml.MappingNode):
        source.problems.append(
            Problem(_pos(shown, document), "", "a workflow file must be a mapping of sections")
        )
        return
    reader = _Reader(source, shown, env)
    data = reader.mapping(document, ())
    includes = data.pop("include", [])
    is_main = not stack
    if not is_main:
        for name in list(data):
            if name not in INCLUDABLE:
                reader.problem(
                    (name,),
                    f"an included file may only define {', '.join(INCLUDABLE)}",
                    key=True,
                )
                del data[name]
    _merge(source, data, reader)
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        reader.problem(("include",), "include must be a file name or a list of file names")
        return
    for index, name in enumerate(includes):
        where = ("include", index)
        if not isinstance(name, str):
            reader.problem(where, "include entries must be file names")
            continue
        target = (path.parent / name).resolve()
        if target in stack or target == path.resolve():
            reader.problem(where, f"include cycle: {name} includes itself (directly or not)")
            continue
        if not target.is_file():
            reader.problem(where, f"included file {name!r} does not exist")
            continue
        _read_into(source, target, env, (*stack, path.resolve()), where)


def _compose(source: Source, path: Path, at: Path_) -> yaml.Node | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        source.add(at, f"cannot read {path}: {e.strerror}")
        return None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        position = Position(str(path), mark.line + 1, mark.column + 1) if mark else None
        position = position or Position(str(path), 1, 1)
        source.problems.append(Problem(position, "", f"invalid YAML: {e.problem or e}"))
        return None
    except yaml.YAMLError as e:
        source.problems.append(Problem(Position(str(path), 1, 1), "", f"invalid YAML: {e}"))
        return None


def _merge(source: Source, data: dict[str, Any], reader: _Reader) -> None:
    """Add a file's sections; a name defined twice (main file or includes) is a problem."""
    for section, value in data.items():
        current = source.data.get(section)
        if section in INCLUDABLE and isinstance(value, dict) and isinstance(current, dict):
            for name, entry in value.items():
                if name in current:
                    first = source.where((section, name), key=True)
                    reader.problem(
                        (section, name),
                        f"{section} entry {name!r} is already defined at {first}",
                        key=True,
                    )
                    continue
                current[name] = entry
                reader.publish(source, (section, name))
        elif section in source.data:
            reader.problem((section,), f"section {section!r} is defined twice", key=True)
        else:
            source.data[section] = value
            reader.publish(source, (section,))


def _pos(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Reader:
    """Turns one file's nodes into data; positions are published when merged."""

    def __init__(self, source: Source, file: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.file = file
        self.env = env
        self.keys: dict[Path_, Position] = {}
        self.values: dict[Path_, Position] = {}

    def publish(self, source: Source, prefix: Path_) -> None:
        n = len(prefix)
        for table, target in ((self.keys, source.keys), (self.values, source.values)):
            for path, position in table.items():
                if path[:n] == prefix:
                    target[path] = position

    def problem(self, path: Path_, message: str, *, key: bool = False) -> None:
        table = (self.keys, self.values) if key else (self.values, self.keys)
        probe = path
        position = Position(self.file, 1, 1)
        while probe:
            hit = table[0].get(probe) or table[1].get(probe)
            if hit:
                position = hit
                break
            probe = probe[:-1]
        self.source.problems.append(Problem(position, dotted(path), message))

    def value(self, node: yaml.Node, path: Path_) -> Any:
        self.values[path] = _pos(self.file, node)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
        value = _construct(node)
        if isinstance(value, str) and path[:1] and path[0] not in _ENV_FREE_SECTIONS:
            value = self.substitute(value, path)
        return value

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(key_node)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            self.keys[child] = _pos(self.file, key_node)
            if key in out:
                self.problem(child, f"key {key!r} appears twice in the same mapping", key=True)
            out[key] = self.value(value_node, child)
        return out

    def substitute(self, text: str, path: Path_) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.env:
                self.problem(path, f"environment variable {name} is not set")
                return ""
            value = self.env[name]
            self.source.secrets.add(value)
            return value

        return _ENV.sub(replace, text)


def _construct(node: yaml.Node) -> Any:
    """A scalar node's value, typed the way ``yaml.safe_load`` would type it."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()
