"""Reading workflow YAML with positions: plain data plus ``file:line:column`` for every key.

PyYAML's composer gives nodes with start marks; we turn the node tree into plain
Python values and keep, for each path (a tuple of keys and indexes), where its key
and its value were written. ``${NAME}`` in scalar values is replaced from the
environment (outside the ``workflow`` section, where ``${...}`` refers to inputs
and steps); substituted values are remembered so messages never show them.
``include:`` pulls in the sections of other files, each keeping its own positions.

The reader is built for files nobody checked: it reads only regular files of at
most :data:`MAX_FILE_BYTES` (a FIFO or a device is refused before it is read,
so it cannot hang), refuses binary and non-UTF-8 text, YAML tags beyond plain
data, nesting deeper than :data:`MAX_DEPTH` and documents that expand (through
aliases) to more than :data:`MAX_VALUES` values ("billion laughs"). Includes
must stay inside the main file's folder once symlinks are resolved, and no
message quotes a file that did not read as a workflow. Every such problem is a
:class:`Problem` with a position, never an exception.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from plait._secrets import Redactor

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INCLUDES",
    "MAX_VALUES",
    "Position",
    "Problem",
    "Source",
    "read_source",
]

Path_ = tuple[str | int, ...]

# Only these top-level sections may come from an included file: they define
# reusable things (agents and what they need), never a second workflow.
INCLUDABLE = ("backends", "tools", "memory", "agents")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_FREE_SECTIONS = ("workflow",)

MAX_FILE_BYTES = 1_000_000
"""The largest workflow (or included) file read, in bytes."""
MAX_DEPTH = 64
"""The deepest nesting of mappings and lists."""
MAX_VALUES = 100_000
"""The most values a workflow and its includes may hold, aliases expanded."""
MAX_INCLUDES = 64
"""The most files one workflow may include (directly or not)."""

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_PLAIN = "plain YAML data: mappings, lists, text, numbers, booleans, null"
_MESSAGE_CHARS = 160
_SURROGATE = re.compile("[\ud800-\udfff]")


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

    def __post_init__(self) -> None:
        # A hostile file's keys and values can be huge: a message stays a line.
        for name, limit in (("key", 120), ("message", 400), ("hint", 200)):
            text = getattr(self, name)
            if len(text) > limit:
                object.__setattr__(self, name, text[: limit - 3] + "...")

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
    counted: int = field(default=0, repr=False)  # values read so far, aliases expanded
    included: int = field(default=0, repr=False)  # files included so far

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
    main = Path(path)
    try:
        root = main.resolve().parent
    except (OSError, RuntimeError, ValueError):
        root = main.absolute().parent
    _read_into(source, main, environ, stack=(), root=root)
    return source


class _TooBig(Exception):
    """A document past one of the reader's limits (caught in :func:`_read_into`)."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _read_into(
    source: Source,
    path: Path,
    env: Mapping[str, str],
    stack: tuple[Path, ...],
    root: Path,
    at: Path_ = (),
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
    try:
        data = reader.mapping(document, (), 0)
    except _TooBig as e:
        source.problems.append(Problem(e.position, "", e.message))
        return
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
    here = _resolved(path)
    for index, name in enumerate(includes):
        where = ("include", index)
        target = _include_target(reader, where, name, here, root)
        if target is None:
            continue
        if target in stack or target == here:
            reader.problem(where, f"include cycle: {name} includes itself (directly or not)")
            continue
        source.included += 1
        if source.included > MAX_INCLUDES:
            reader.problem(where, f"more than {MAX_INCLUDES} included files")
            return
        _read_into(source, target, env, (*stack, here), root, where)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return path.absolute()


def _include_target(
    reader: _Reader, where: Path_, name: Any, here: Path, root: Path
) -> Path | None:
    """The file an ``include`` entry names, or ``None`` (with the problem recorded).

    Includes are relative to the including file and must stay inside ``root``
    (the main file's folder) once every symlink is resolved.
    """
    if not isinstance(name, str) or not name.strip():
        reader.problem(where, "include entries must be file names")
        return None
    if "\x00" in name:
        reader.problem(where, "an include name cannot contain a NUL character")
        return None
    if Path(name).is_absolute() or name.startswith("~"):
        reader.problem(
            where,
            f"include {name!r} is an absolute path; "
            "includes are relative to the file and stay inside the workflow's folder",
        )
        return None
    try:
        target = (here.parent / name).resolve()
    except (OSError, RuntimeError, ValueError):
        reader.problem(where, f"included file {name!r} cannot be resolved (a symlink loop?)")
        return None
    if not target.is_relative_to(root):
        reader.problem(
            where,
            f"included file {name!r} is outside the workflow's folder "
            "(includes, symlinks resolved, must stay inside it)",
        )
        return None
    if not target.exists():
        reader.problem(where, f"included file {name!r} does not exist")
        return None
    return target


def _read_text(path: Path) -> str:
    """The file's text; raises ``_Unreadable`` with a positioned reason.

    The file is opened without blocking and checked to be a regular file of at
    most :data:`MAX_FILE_BYTES` before anything is read, so a FIFO, a device or
    a huge file is refused at once.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _Unreadable("is a folder, not a workflow file")
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable("is not a regular file (a FIFO, socket or device is never read)")
        if info.st_size > MAX_FILE_BYTES:
            raise _Unreadable(
                f"is {info.st_size:,} bytes; a workflow file may have at most "
                f"{MAX_FILE_BYTES:,} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES:  # it grew while being read
        raise _Unreadable(f"has more than {MAX_FILE_BYTES:,} bytes")
    return _decode(data)


class _Unreadable(Exception):
    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def _line_column(data: bytes | str, offset: int) -> tuple[int, int]:
    head = data[:offset]
    newline = b"\n" if isinstance(head, bytes) else "\n"
    line = head.count(newline) + 1  # type: ignore[arg-type]
    return line, offset - (head.rfind(newline) + 1) + 1  # type: ignore[arg-type]


def _decode(data: bytes) -> str:
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if data.startswith(bom):
            raise _Unreadable(f"is {name} text; save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        line, column = _line_column(data, nul)
        raise _Unreadable("holds NUL bytes: a binary file, not YAML text", line, column)
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte order mark is allowed
    except UnicodeDecodeError as e:
        line, column = _line_column(data, e.start)
        raise _Unreadable(
            f"is not UTF-8 text (byte 0x{data[e.start]:02x} cannot be decoded); save it as UTF-8",
            line,
            column,
        ) from e


def _short(text: object) -> str:
    """A parser message, cut short (it may hold a token of the file)."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 3] + "..."


def _compose(source: Source, path: Path, at: Path_) -> yaml.Node | None:
    shown = str(path)
    try:
        text = _read_text(path)
    except OSError as e:
        source.add(at, f"cannot read {path}: {e.strerror or e}")
        return None
    except _Unreadable as e:
        source.problems.append(Problem(Position(shown, e.line, e.column), "", f"the file {e}"))
        return None
    loader: _Loader | None = None
    try:
        loader = _Loader(text, shown)
        return loader.get_single_node()
    except _TooBig as e:
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
        line, column = _line_column(text, e.position)
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
                raise _TooBig(message, Position(self.file, mark.line + 1, mark.column + 1))
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


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

    def count(self, node: yaml.Node, depth: int) -> None:
        """Charge one value to the document's budget (aliases count each time)."""
        self.source.counted += 1
        if self.source.counted > MAX_VALUES:
            raise _TooBig(
                f"the workflow expands to more than {MAX_VALUES:,} values "
                "(aliases repeat what their anchor holds)",
                _pos(self.file, node),
            )
        if depth > MAX_DEPTH:
            raise _TooBig(
                f"nesting deeper than {MAX_DEPTH} levels (an alias inside its own anchor?)",
                _pos(self.file, node),
            )

    def value(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.count(node, depth)
        self.values[path] = _pos(self.file, node)
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
            raise _TooBig(f"unsupported YAML tag {_tag(node)} ({_PLAIN})", _pos(self.file, node))

    def scalar(self, node: yaml.Node) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise _TooBig(f"unsupported YAML tag {_tag(node)} ({_PLAIN})", _pos(self.file, node))
        try:
            value = _construct(node)
        except (ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError) as e:
            raise _TooBig(
                f"the value does not match its tag {_tag(node)}", _pos(self.file, node)
            ) from e
        if isinstance(value, str) and _SURROGATE.search(value):
            raise _TooBig(
                "the text holds a lone surrogate escape (\\ud800-\\udfff), which is no character",
                _pos(self.file, node),
            )
        return value

    def mapping(self, node: yaml.MappingNode, path: Path_, depth: int = 0) -> dict[str, Any]:
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
                        raise _TooBig("'<<' merges mappings only", _pos(self.file, merge))
                    self.count(merge, depth + 1)
                    pairs.extend(p for p in merge.value if p[0].tag != _YAML + "merge")
                continue
            pairs.append((key_node, value_node))
        explicit = {id(k) for k, _ in node.value if k.tag != _YAML + "merge"}
        for key_node, value_node in pairs:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _TooBig("mapping keys must be plain text", _pos(self.file, key_node))
            key = self.scalar(key_node)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            if key in out:
                if key in merged:  # a key given here overrides a merged one
                    merged.discard(key)
                elif id(key_node) in explicit:
                    self.keys[child] = _pos(self.file, key_node)
                    self.problem(child, f"key {key!r} appears twice in the same mapping", key=True)
                else:
                    continue  # an earlier merge source wins
            elif id(key_node) not in explicit:
                merged.add(key)
            self.keys[child] = _pos(self.file, key_node)
            out[key] = self.value(value_node, child, depth + 1)
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
