"""The ``memory:`` and ``agents:`` sections."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ._spec_base import SpecModel
from ._spec_tools import ToolSelectionSpec

__all__ = ["AgentSpec", "GuardSpec", "MemorySpec"]


class GuardSpec(SpecModel):
    """MemoryGuard settings: ``judge`` names a backend (omitted: compare texts only)."""

    judge: str | None = None
    strict: bool = False
    quarantine: list[Literal["tool", "web", "external", "agent"]] = Field(
        default_factory=list, description="sources stored quarantined"
    )


class MemorySpec(SpecModel):
    """The workflow's long-term memory (chromadb, offline embedder)."""

    namespace: str = "default"
    path: str | None = Field(
        default=None, description="store folder, relative to the working directory"
    )
    host: str | None = Field(default=None, description="a Chroma server instead of a folder")
    port: int = 8000
    embedder: Literal["default"] | str = Field(
        default="default", description="'default' (offline e5) or a backend name"
    )
    guard: GuardSpec | None = None
    recall_k: int = Field(default=3, ge=1)


class AgentSpec(SpecModel):
    """An agent: instructions, a backend, tools, an output type, memory."""

    instructions: str
    backend: str | None = Field(default=None, description="a backends entry (omitted: default)")
    tools: list[str] = Field(default_factory=list, description="tools entries")
    output: dict[str, Any] | None = Field(
        default=None, description="JSON Schema the answer must match"
    )
    memory: bool = False
    temperature: float | None = Field(default=None, ge=0)
    tool_choice: str = "auto"
    tool_selection: ToolSelectionSpec | None = Field(
        default=None, description="model | embedding | hybrid (omitted: by backend)"
    )
    max_tool_rounds: int | None = Field(default=None, ge=0)
    max_steps: int = Field(default=8, ge=1)
    max_turn_tokens: int = Field(default=512, ge=1)
    timeout_s: float | None = Field(default=120.0, gt=0)
    shared_context: str = ""
    mode: Literal["default", "plan_then_execute"] = Field(
        default="default",
        description="plan_then_execute: untrusted tool results are withheld from the model, "
        "passed on by reference ($n)",
    )
