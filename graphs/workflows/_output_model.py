"""An agent's ``output:`` JSON Schema as the pydantic model its answer must match."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, create_model

from plait.errors import ConfigError

__all__ = ["output_model"]

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


def output_model(agent: str, schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model for an object JSON Schema (flat properties; nested values stay JSON)."""
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise ConfigError(
            f"agent {agent!r}: output must be a JSON Schema of type 'object' with 'properties'"
        )
    required = set(schema.get("required", schema["properties"]))
    fields: dict[str, Any] = {}
    for prop, body in schema["properties"].items():
        kind = body.get("type", "string") if isinstance(body, dict) else "string"
        python = _JSON_TYPES.get(kind, Any)
        if isinstance(body, dict) and "enum" in body:
            python = Literal[tuple(body["enum"])]
        fields[prop] = (python, ...) if prop in required else (python | None, None)
    return create_model(f"{agent.title().replace('-', '')}Output", **fields)
