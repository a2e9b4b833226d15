"""What a backend is asked: the chat request and the tools it may call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from plait.errors import ConfigError
from plait.messages import Message, SystemMessage, UserMessage

__all__ = ["ChatRequest", "ToolChoice", "ToolSpec", "describe_validation_error"]


def describe_validation_error(error: ValidationError) -> str:
    """Render a pydantic error as one line per problem: ``field.path: message``."""
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        lines.append(f"{where}: {item['msg']}")
    return "invalid " + "; ".join(lines)


def _check_json_schema(schema: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise ValueError(f"{what} is not a valid JSON Schema at {where}: {e.message}") from e
    return schema


class ToolSpec(BaseModel):
    """A tool as the model sees it: a name, a description and a JSON Schema."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_json_schema(value, "tool parameters")


ToolChoice = Literal["auto", "none", "required"] | str
"""``auto`` (model decides), ``none``, ``required`` (some tool), or a tool name."""


class ChatRequest(BaseModel):
    """One request to a chat model.

    Sampling fields left as ``None`` take the backend's defaults. ``agent`` and
    ``tags`` say who is asking; routers and traces use them, models never see them.
    ``parallel_tool_calls=False`` allows at most one tool call in the reply
    (``None``: the backend's default, several allowed). ``priority`` is scheduling
    metadata (higher is served first, 0 is neutral): the local engine admits by
    it, with aging so nothing starves. ``retry_connect=False`` asks a backend not
    to retry a connection it could not open (refused, or the connect timed
    out): a fallback router sets it for every backend but the last one that
    can serve, so a dead server costs one connect attempt, not a round of
    backoff. Both say how to deliver the request, not what is asked
    (:attr:`DELIVERY_FIELDS`): no server is sent them unless asked (a
    backend's ``send_priority``) and no cache key depends on them.
    """

    model_config = ConfigDict(frozen=True)

    DELIVERY_FIELDS: ClassVar[frozenset[str]] = frozenset({"priority", "retry_connect"})
    """Fields about delivery, not content: left out of every cache key."""

    def __init__(self, **data: Any) -> None:
        # A bad request is the caller's input error: surface it as a plait error
        # that names every offending field, not as a bare pydantic traceback.
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise ConfigError(describe_validation_error(e), location="ChatRequest") from e

    messages: tuple[Message, ...] = Field(min_length=1)
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool | None = None
    response_schema: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    agent: str | None = None
    tags: tuple[str, ...] = ()
    priority: int = 0
    retry_connect: bool = True

    @field_validator("response_schema")
    @classmethod
    def _valid_response_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_json_schema(value, "response_schema")

    @field_validator("tool_choice")
    @classmethod
    def _known_choice(cls, value: str, info: Any) -> str:
        if value in ("auto", "none", "required"):
            return value
        names = {t.name for t in info.data.get("tools", ())}
        if value not in names:
            raise ValueError(f"tool_choice {value!r} names no tool of this request")
        return value

    @classmethod
    def from_prompt(cls, prompt: str, *, system: str | None = None, **fields: Any) -> ChatRequest:
        """Build a request from a user prompt and an optional system prompt."""
        messages: list[Message] = []
        if system:
            messages.append(SystemMessage(content=system))
        messages.append(UserMessage(content=prompt))
        return cls(messages=tuple(messages), **fields)

    def with_messages(self, messages: Sequence[Message]) -> ChatRequest:
        """Return a copy with other messages (everything else unchanged)."""
        return self.model_copy(update={"messages": tuple(messages)})
