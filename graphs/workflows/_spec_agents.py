"""The ``memory:`` and ``agents:`` sections: local agents, and remote ones over A2A."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from ._spec_base import SpecModel
from ._spec_tools import ToolSelectionSpec

__all__ = ["A2AAgentSpec", "A2AEndpointSpec", "AgentEntry", "AgentSpec", "GuardSpec", "MemorySpec"]


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
    tool_sampling: int | None = Field(
        default=None,
        ge=1,
        description="candidates drawn per tool call, voted on (omitted: by backend; 1: no vote)",
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


class A2AEndpointSpec(SpecModel):
    """Where a remote A2A agent is, and the limits of calling it."""

    url: str = Field(
        pattern=r"^https?://",
        description="the agent's base URL (card at <url>/.well-known/agent-card.json)",
    )
    token: str | None = Field(
        default=None, description="sent as a bearer token; a secret as ${NAME} from the environment"
    )
    timeout_s: float = Field(
        default=120.0, gt=0, description="deadline of one call, stream included"
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="deadline of fetching its card"
    )
    max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="largest response read")
    trust: Literal["high", "medium", "low"] = Field(
        default="low", description="trust of its answers' source a2a:<host>"
    )


class A2AAgentSpec(SpecModel):
    """A remote agent over A2A (:class:`plait.agents.RemoteAgent`); its card describes it."""

    a2a: A2AEndpointSpec


def _agent_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a2a" if "a2a" in value else "local"
    return "a2a" if isinstance(value, A2AAgentSpec) else "local"


AgentEntry = Annotated[
    Annotated[AgentSpec, Tag("local")] | Annotated[A2AAgentSpec, Tag("a2a")],
    Discriminator(_agent_kind),
]
