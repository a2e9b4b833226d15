"""Where a workflow file says something, and what is wrong there: ``Position``, ``Problem``.

Every reader and check of a workflow file reports through these: a problem is
data with a ``file:line:column``, never an exception, so that all of them are
listed at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["KeyPath", "Position", "Problem", "did_you_mean", "dotted"]

KeyPath = tuple[str | int, ...]
"""A place in a workflow document: its keys and list indexes from the top."""


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


def dotted(path: KeyPath) -> str:
    """``("agents", "writer", "tools", 0)`` -> ``agents.writer.tools[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """A hint naming the option closest to ``name`` ("did you mean 'writer'?"), or ""."""
    match = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""
