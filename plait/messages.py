"""Chat messages and tool calls, the units every backend speaks."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plait.errors import ModelOutputError

__all__ = [
    "AssistantMessage",
    "Message",
    "SystemMessage",
    "ToolCall",
    "ToolMessage",
    "UserMessage",
]


def _new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:12]


class ToolCall(BaseModel):
    """One call of a tool requested by the model.

    ``arguments`` is kept as JSON text, exactly as the model (or server) produced
    it, so transcripts stay byte-stable; pass a dict and it is serialized for you.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=_new_call_id)
    name: str
    arguments: str = "{}"

    @field_validator("arguments", mode="before")
    @classmethod
    def _dump_dict(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
        return value

    def parsed_arguments(self) -> dict[str, Any]:
        """Return the arguments as a dict.

        Raises:
            ModelOutputError: the arguments are not a JSON object.
        """
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError as e:
            raise ModelOutputError(
                f"arguments of tool call {self.name!r} are not valid JSON ({e.msg})",
                raw=self.arguments,
            ) from e
        if not isinstance(value, dict):
            raise ModelOutputError(
                f"arguments of tool call {self.name!r} are not a JSON object",
                raw=self.arguments,
            )
        return value


class SystemMessage(BaseModel):
    """Instructions for the model; put shared ones first so prefix caches hit."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system"] = "system"
    content: str


class UserMessage(BaseModel):
    """A message from the user (or from another agent acting as one)."""

    model_config = ConfigDict(frozen=True)

    role: Literal["user"] = "user"
    content: str
    name: str | None = None


class AssistantMessage(BaseModel):
    """A model turn: text, tool calls, or both."""

    model_config = ConfigDict(frozen=True)

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


class ToolMessage(BaseModel):
    """The result of a tool call, sent back to the model."""

    model_config = ConfigDict(frozen=True)

    role: Literal["tool"] = "tool"
    content: str
    tool_call_id: str
    name: str | None = None


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]
"""Any chat message; pydantic picks the class from its ``role``."""
