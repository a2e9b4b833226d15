"""Workflow inputs: given values converted to their declared types, and substituted.

``${inputs.NAME}`` is replaced before a run starts; references to steps
(``${step}``) are left for the executor, which fills them with results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.errors import ConfigError

from ..dag import find_references, substitute
from ._references import input_references
from ._schema import InputSpec

__all__ = ["convert_input", "with_inputs"]


def convert_input(name: str, value: Any, spec: InputSpec) -> Any:
    """A given input value (often text from the command line) as its declared type."""
    if spec.type == "string":
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if spec.type == "integer":
                return int(text)
            if spec.type == "number":
                return float(text)
        except ValueError as e:
            article = "an" if spec.type == "integer" else "a"
            raise ConfigError(f"input {name!r} must be {article} {spec.type}, got {value!r}") from e
        if text.lower() in ("true", "yes", "1"):
            return True
        if text.lower() in ("false", "no", "0"):
            return False
        raise ConfigError(f"input {name!r} must be true or false, got {value!r}")
    return value


def with_inputs(value: Any, inputs: Mapping[str, Any]) -> Any:
    """Replace ``${inputs.NAME}``; step references are left for the executor."""
    names = input_references(value)
    if not names:
        return value
    return _partial(value, {f"inputs.{n}": inputs.get(n, "") for n in names})


def _partial(value: Any, known: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        if not find_references(value) <= set(known):
            # Mixed text: substitute input references one by one, keep the others.
            for ref, result in known.items():
                text = result if isinstance(result, str) else str(result)
                value = value.replace("${" + ref + "}", text)
            return value
        return substitute(value, known)
    if isinstance(value, Mapping):
        return {k: _partial(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_partial(v, known) for v in value]
    return value
