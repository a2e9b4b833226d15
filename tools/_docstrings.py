"""Read a tool's description and per-argument docs from a Google-style docstring."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

__all__ = ["ParsedDocstring", "parse_docstring"]

_SECTION = re.compile(r"^(\w[\w ]*):\s*$")
_ARG = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class ParsedDocstring:
    """The parts of a docstring a tool schema uses.

    Attributes:
        description: the text before the first section (summary and body).
        args: argument name -> its description, from the ``Args:`` section.
    """

    description: str = ""
    args: dict[str, str] = field(default_factory=dict)


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Split a Google-style docstring into its description and ``Args:`` entries.

    Sections other than ``Args:`` (``Returns:``, ``Raises:``, ...) are dropped:
    the model needs to know what a tool does and what each argument means, not
    how the Python function reports errors.
    """
    if not doc:
        return ParsedDocstring()
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in lines:
        header = _SECTION.match(line)
        if header and not line.startswith(" "):
            section = header.group(1).strip().lower()
            current = None
            continue
        if section is None:
            description.append(line)
        elif section in ("args", "arguments", "parameters"):
            stripped = line.strip()
            entry = _ARG.match(stripped)
            # An entry starts at the section's first indentation level; deeper
            # lines continue the previous entry.
            if entry and _indent(line) <= 4:
                current = entry.group(1).lstrip("*")
                args[current] = entry.group(2).strip()
            elif current and stripped:
                args[current] = f"{args[current]} {stripped}".strip()
    return ParsedDocstring(description="\n".join(description).strip(), args=args)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))
