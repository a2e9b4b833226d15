"""A workflow file and its includes read into one document, with positions: ``read_source``.

The reader (:mod:`._yaml_reader`, over :mod:`._file_text`) turns each file into
plain data plus ``file:line:column`` for every key and value; here the files
are merged. ``include:`` pulls in the sections of other files, each keeping its
own positions; a name defined twice is a problem naming both places.

The reader is built for files nobody checked: it reads only regular files of at
most :data:`MAX_FILE_BYTES`, refuses binary and non-UTF-8 text, YAML tags beyond
plain data, nesting deeper than :data:`MAX_DEPTH` and documents that expand to
more than :data:`MAX_VALUES` values. Includes must stay inside the main file's
folder once symlinks are resolved, and no message quotes a file that did not
read as a workflow. Every such problem is a :class:`Problem` with a position,
never an exception.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from plait._secrets import Redactor

from ._file_text import MAX_FILE_BYTES
from ._problems import KeyPath, Position, Problem, dotted
from ._yaml_reader import (
    MAX_DEPTH,
    MAX_VALUES,
    YamlReader,
    _LimitExceeded,
    compose_file,
    node_position,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INCLUDES",
    "MAX_VALUES",
    "Position",
    "Problem",
    "WorkflowSource",
    "read_source",
]

# Only these top-level sections may come from an included file: they define
# reusable things (agents and what they need), never a second workflow.
INCLUDABLE = ("backends", "tools", "memory", "agents")
MAX_INCLUDES = 64
"""The most files one workflow may include (directly or not)."""


@dataclass
class WorkflowSource:
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
    keys: dict[KeyPath, Position] = field(default_factory=dict)
    values: dict[KeyPath, Position] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    counted: int = field(default=0, repr=False)  # values read so far, aliases expanded
    included: int = field(default=0, repr=False)  # files included so far

    def where(self, path: KeyPath, *, key: bool = False) -> Position:
        """The position of ``path``, or of its nearest ancestor that has one."""
        table = (self.keys, self.values) if key else (self.values, self.keys)
        probe = tuple(path)
        while probe:
            for positions in table:
                if probe in positions:
                    return positions[probe]
            probe = probe[:-1]
        return Position(str(self.path), 1, 1)

    def add(self, path: KeyPath, message: str, hint: str = "", *, key: bool = False) -> None:
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


def read_source(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> WorkflowSource:
    """Read ``path`` and its includes. Problems are collected, never raised."""
    source = WorkflowSource(Path(path))
    environ = os.environ if env is None else env
    main = Path(path)
    try:
        root = main.resolve().parent
    except (OSError, RuntimeError, ValueError):
        root = main.absolute().parent
    _read_into(source, main, environ, stack=(), root=root)
    return source


def _read_into(
    source: WorkflowSource,
    path: Path,
    env: Mapping[str, str],
    stack: tuple[Path, ...],
    root: Path,
    at: KeyPath = (),
) -> None:
    document = compose_file(source, path, at)
    if document is None:
        return
    shown = str(path)
    if not isinstance(document, yaml.MappingNode):
        source.problems.append(
            Problem(
                node_position(shown, document), "", "a workflow file must be a mapping of sections"
            )
        )
        return
    reader = YamlReader(source, shown, env)
    try:
        data = reader.mapping(document, (), 0)
    except _LimitExceeded as e:
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
    reader: YamlReader, where: KeyPath, name: Any, here: Path, root: Path
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


def _merge(source: WorkflowSource, data: dict[str, Any], reader: YamlReader) -> None:
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
