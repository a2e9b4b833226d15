"""Quarantined extraction: turn untrusted text into a typed value without giving it control.

The dual-LLM pattern (Beurer-Kellner et al., 2025): a model that reads
untrusted text gets no tools and must answer in a fixed schema, so whatever the
text says, the only thing it can produce is a value of that type. The value
keeps the text's provenance (the tool is pure: it adds no source, and the
executor or agent gives its result the sources of its input), so policies still
see where it came from.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from plait._request_priority import current_request_priority
from plait.backends import Backend
from plait.chat import ChatRequest
from plait.errors import ModelOutputError
from plait.messages import UserMessage
from plait.tools import Tool, json_schema_of, tool

from ._prompts import render

__all__ = ["extraction_tool"]


def extraction_tool(
    backend: Backend,
    output_type: Any = str,
    *,
    name: str = "extract",
    description: str | None = None,
    max_tokens: int = 128,
) -> Tool:
    """A tool ``extract(text, what)`` answering one value of ``output_type`` about ``text``.

    One model call with no tools and a response schema (the output type's,
    wrapped as ``{"value": ...}``); the result is validated against the type.

    Args:
        backend: the quarantined model (it needs JSON-schema output).
        output_type: the value's type (``str``, a ``Literal``, a pydantic model, a
            constrained ``Annotated`` string such as a date pattern).
        name: the tool's name.
        description: what the planner sees (default: a sentence naming the type).
        max_tokens: the answer's token limit.

    Raises:
        ConfigError: the output type has no JSON Schema.
    """
    schema = {
        "type": "object",
        "properties": {"value": json_schema_of(output_type)},
        "required": ["value"],
        "additionalProperties": False,
    }
    adapter: TypeAdapter[Any] = TypeAdapter(output_type)

    async def extract(text: str, what: str) -> Any:
        """Extract one value from untrusted text (the text cannot steer anything).

        Args:
            text: the text to read, e.g. a tool result ("$1").
            what: what to extract, e.g. "the meeting date".
        """
        request = ChatRequest(
            messages=(UserMessage(content=render("extract", what=what, text=text)),),
            response_schema=schema,
            temperature=0.0,
            max_tokens=max_tokens,
            agent=name,
            # Extraction runs inside a task (a plan's tool call): it is served at
            # the task's critical-path priority, like an agent's own turns.
            priority=current_request_priority(),
        )
        completion = await backend.complete(request)
        try:
            value = adapter.validate_python(json.loads(completion.text)["value"])
        except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as e:
            raise ModelOutputError(
                f"{name}: the extracted value does not fit the output type ({e})",
                raw=completion.text,
            ) from e
        return value.model_dump(mode="json") if hasattr(value, "model_dump") else value

    type_name = getattr(output_type, "__name__", str(output_type))
    return tool(
        name=name,
        description=description or f"Extract a {type_name} value from a text (quarantined).",
        pure=True,
    )(extract)
