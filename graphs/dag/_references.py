"""References between tasks: ``$1``, ``${1}`` and ``${name}`` inside task arguments.

``$$`` stands for a literal dollar sign (``"costs $$5"`` is the text "costs $5").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["find_references", "substitute"]

# `$id` takes an id of word characters; `${...}` takes anything up to the brace;
# `$$` is an escaped dollar and matches first so it is never read as a reference.
_REFERENCE = re.compile(r"\$\$|\$(?:\{([^{}]+)\}|([A-Za-z0-9_]+))")


def _ids_in(text: str) -> list[str]:
    return [braced or bare for braced, bare in _REFERENCE.findall(text) if braced or bare]


def find_references(value: Any) -> set[str]:
    """Every task id referenced anywhere inside an argument value."""
    if isinstance(value, str):
        return set(_ids_in(value))
    if isinstance(value, Mapping):
        return set().union(*(find_references(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(find_references(v) for v in value)) if value else set()
    return set()


def substitute(value: Any, results: Mapping[str, Any]) -> Any:
    """Replace references with results.

    A string that is exactly one reference becomes the result itself (a number
    stays a number); a reference inside longer text becomes its text form.
    """
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole and whole.group(0) != "$$":
            return results[whole.group(1) or whole.group(2)]
        return _REFERENCE.sub(lambda m: _replacement(m, results), value)
    if isinstance(value, Mapping):
        return {k: substitute(v, results) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(v, results) for v in value]
    return value


def _replacement(match: re.Match[str], results: Mapping[str, Any]) -> str:
    if match.group(0) == "$$":
        return "$"
    return _as_text(results[match.group(1) or match.group(2)])


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, ensure_ascii=False)
    except TypeError:
        return str(result)
