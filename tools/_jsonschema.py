"""Argument checks for tools described only by a JSON Schema (LangChain, MCP servers)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

__all__ = ["UNSET", "json_schema_model"]


class _Unset:
    """Marks an optional argument the model left out (it is not passed on)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def _field_name(key: str, index: int, keys: list[str]) -> str:
    """A pydantic field name for property ``key`` (the property itself is the field's alias).

    pydantic refuses names with a leading underscore (``_class``), names that
    are not identifiers and names of BaseModel's own attributes (``schema``), all
    of which a JSON Schema may use.
    """
    if key.isidentifier() and not key.startswith("_") and not hasattr(BaseModel, key):
        return key
    name = f"property_{index}"
    while name in keys:
        name += "_"
    return name


def json_schema_model(name: str, schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model that checks arguments against a plain JSON Schema.

    Every property becomes a field (left-out optional ones read :data:`UNSET`);
    the whole arguments object is checked by ``jsonschema`` first, so every
    problem is reported with its path.

    Raises:
        ValueError: ``schema`` is not a valid JSON Schema.
    """
    # The draft the schema declares ("$schema"), else 2020-12.
    kind = validator_for(schema, default=Draft202012Validator)
    try:
        kind.check_schema(schema)
    except SchemaError as e:
        raise ValueError(f"invalid JSON Schema: {e.message}") from e
    validator = kind(schema)
    required = set(schema.get("required", ()))
    properties = schema.get("properties", {})
    keys = list(properties) if isinstance(properties, dict) else []
    fields: dict[str, Any] = {}
    for index, key in enumerate(keys):
        default = Field(alias=key) if key in required else Field(UNSET, alias=key)
        fields[_field_name(key, index, keys)] = (Any, default)

    def check(cls: type[BaseModel], data: Any) -> Any:
        problems = [
            f"{'.'.join(str(p) for p in err.path) or '(arguments)'}: {err.message}"
            for err in validator.iter_errors(data)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return data

    validators: dict[str, Any] = {"_check": model_validator(mode="before")(classmethod(check))}  # type: ignore[arg-type]
    config = ConfigDict(extra="allow", validate_default=False)
    return create_model(f"{name}_arguments", __config__=config, __validators__=validators, **fields)
