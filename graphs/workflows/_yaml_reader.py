"""A workflow file's YAML as plain data, with the position of every key and value.

PyYAML's composer gives nodes with start marks; :class:`YamlReader` turns the
node tree into plain Python values and keeps, for each path (a tuple of keys and
indexes), where its key and its value were written. ``${NAME}`` in scalar values
is replaced from the environment (outside the ``workflow`` section, where
``${...}`` refers to inputs and steps); substituted values are remembered as the
file's secrets. Only plain data is read: YAML tags beyond it, nesting deeper
than :data:`MAX_DEPTH` and documents that expand (through aliases) to more than
:data:`MAX_VALUES` values ("billion laughs") are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ._file_text import _UnreadableFile, line_column, read_text
from ._problems import KeyPath, Position, Problem, dotted

if TYPE_CHECKING:
    from ._source import WorkflowSource

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "YamlReader",
    "compose_file",
    "node_position",
]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_FREE_SECTIONS = ("workflow",)

MAX_DEPTH = 64
"""The deepest nesting of mappings and lists."""
MAX_VALUES = 100_000
"""The most values a workflow and its includes may hold, aliases expanded."""

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_PLAIN = "plain YAML data: mappings, lists, text, numbers, booleans, null"
_MESSAGE_CHARS = 160
_SURROGATE = re.compile("[\ud800-\udfff]")


class _LimitExceeded(Exception):
    """A document past one of the reader's limits, or not plain data.

    Never leaves the workflow reader: it becomes a positioned ``Problem``.
    """

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _short(text: object) -> str:
    """A parser message, cut short (it may hold a token of the file)."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 3] + "..."


def compose_file(source: WorkflowSource, path: Path, at: KeyPath) -> yaml.Node | None:
    """The document node of ``path``, or ``None`` with the problem recorded on ``source``."""
    shown = str(path)
    try:
        text = read_text(path)
    except OSError as e:
        source.add(at, f"cannot read {path}: {e.strerror or e}")
        return None
    except _UnreadableFile as e:
        source.problems.append(Problem(Position(shown, e.line, e.column), "", f"the file {e}"))
        return None
    loader: _Loader | None = None
    try:
        loader = _Loader(text, shown)
        return loader.get_single_node()
    except _LimitExceeded as e:
        source.problems.append(Problem(e.position, "", e.message))
        return None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        position = Position(shown, mark.line + 1, mark.column + 1) if mark else None
        position = position or Position(shown, 1, 1)
        reason = ", ".join(str(x) for x in (e.context, e.problem) if x) or str(e)
        source.problems.append(Problem(position, "", f"invalid YAML: {_short(reason)}"))
        return None
    except yaml.reader.ReaderError as e:
        line, column = line_column(text, e.position)
        reason = (
            f"character U+{e.character:04X} is not allowed in YAML"
            if isinstance(e.character, int)
            else "a character is not allowed in YAML"
        )
        source.problems.append(
            Problem(Position(shown, line, column), "", f"invalid YAML: {reason}")
        )
        return None
    except yaml.YAMLError as e:
        source.problems.append(Problem(Position(shown, 1, 1), "", f"invalid YAML: {_short(e)}"))
        return None
    finally:
        if loader is not None:
            loader.dispose()


class _Loader(yaml.SafeLoader):
    """PyYAML's safe composer with a nesting limit and a node budget."""

    def __init__(self, stream: str, file: str) -> None:
        super().__init__(stream)
        self.file = file
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        self.nodes += 1
        try:
            if self.depth > MAX_DEPTH or self.nodes > MAX_VALUES:
                mark = self.peek_event().start_mark
                message = (
                    f"nesting deeper than {MAX_DEPTH} levels"
                    if self.depth > MAX_DEPTH
                    else f"more than {MAX_VALUES:,} values"
                )
                raise _LimitExceeded(message, Position(self.file, mark.line + 1, mark.column + 1))
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def node_position(file: str, node: yaml.Node) -> Position:
    """Where ``node`` starts in ``file``."""
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


class YamlReader:
    """Turns one file's nodes into data; positions are published when merged."""

    def __init__(self, source: WorkflowSource, file: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.file = file
        self.env = env
        self.keys: dict[KeyPath, Position] = {}
        self.values: dict[KeyPath, Position] = {}

    def publish(self, source: WorkflowSource, prefix: KeyPath) -> None:
        n = len(prefix)
        for table, target in ((self.keys, source.keys), (self.values, source.values)):
            for path, position in table.items():
                if path[:n] == prefix:
                    target[path] = position

    def problem(self, path: KeyPath, message: str, *, key: bool = False) -> None:
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

    def count(self, node: yaml.Node, depth: int) -> None:
        """Charge one value to the document's budget (aliases count each time)."""
        self.source.counted += 1
        if self.source.counted > MAX_VALUES:
            raise _LimitExceeded(
                f"the workflow expands to more than {MAX_VALUES:,} values "
                "(aliases repeat what their anchor holds)",
                node_position(self.file, node),
            )
        if depth > MAX_DEPTH:
            raise _LimitExceeded(
                f"nesting deeper than {MAX_DEPTH} levels (an alias inside its own anchor?)",
                node_position(self.file, node),
            )

    def value(self, node: yaml.Node, path: KeyPath, depth: int) -> Any:
        self.count(node, depth)
        self.values[path] = node_position(self.file, node)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            self.expect(node, "seq")
            return [self.value(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        value = self.scalar(node)
        if isinstance(value, str) and path[:1] and path[0] not in _ENV_FREE_SECTIONS:
            value = self.substitute(value, path)
        return value

    def expect(self, node: yaml.Node, kind: str) -> None:
        if node.tag != _YAML + kind:
            raise _LimitExceeded(
                f"unsupported YAML tag {_tag(node)} ({_PLAIN})", node_position(self.file, node)
            )

    def scalar(self, node: yaml.Node) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise _LimitExceeded(
                f"unsupported YAML tag {_tag(node)} ({_PLAIN})", node_position(self.file, node)
            )
        try:
            value = _construct(node)
        except (ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError) as e:
            raise _LimitExceeded(
                f"the value does not match its tag {_tag(node)}", node_position(self.file, node)
            ) from e
        if isinstance(value, str) and _SURROGATE.search(value):
            raise _LimitExceeded(
                "the text holds a lone surrogate escape (\\ud800-\\udfff), which is no character",
                node_position(self.file, node),
            )
        return value

    def mapping(self, node: yaml.MappingNode, path: KeyPath, depth: int = 0) -> dict[str, Any]:
        self.expect(node, "map")
        out: dict[str, Any] = {}
        merged: set[str] = set()
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _YAML + "merge":
                # ``<<: *base`` (or a list of them): the anchors' keys, unless given here.
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for merge in sources:
                    if not isinstance(merge, yaml.MappingNode):
                        raise _LimitExceeded(
                            "'<<' merges mappings only", node_position(self.file, merge)
                        )
                    self.count(merge, depth + 1)
                    pairs.extend(p for p in merge.value if p[0].tag != _YAML + "merge")
                continue
            pairs.append((key_node, value_node))
        explicit = {id(k) for k, _ in node.value if k.tag != _YAML + "merge"}
        for key_node, value_node in pairs:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _LimitExceeded(
                    "mapping keys must be plain text", node_position(self.file, key_node)
                )
            key = self.scalar(key_node)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            if key in out:
                if key in merged:  # a key given here overrides a merged one
                    merged.discard(key)
                elif id(key_node) in explicit:
                    self.keys[child] = node_position(self.file, key_node)
                    self.problem(child, f"key {key!r} appears twice in the same mapping", key=True)
                else:
                    continue  # an earlier merge source wins
            elif id(key_node) not in explicit:
                merged.add(key)
            self.keys[child] = node_position(self.file, key_node)
            out[key] = self.value(value_node, child, depth + 1)
        return out

    def substitute(self, text: str, path: KeyPath) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.env:
                self.problem(path, f"environment variable {name} is not set")
                return ""
            value = self.env[name]
            self.source.secrets.add(value)
            return value

        return _ENV.sub(replace, text)


def _tag(node: yaml.Node) -> str:
    tag = str(node.tag)
    return _short("!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag)


def _construct(node: yaml.Node) -> Any:
    """A scalar node's value, typed the way ``yaml.safe_load`` would type it."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()
