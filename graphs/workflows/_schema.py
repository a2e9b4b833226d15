"""The workflow file format, as pydantic models: the single source of truth.

``plait schema`` prints :func:`workflow_json_schema` for editor completion; the
loader validates files against :class:`WorkflowSpec`. A file has these sections::

    include: [agents.yaml]          # backends/tools/memory/agents from other files
    backends: {name: backend}       # local GGUF, openai-compatible, router
    tools: {name: tool}             # builtin (calculator, files, http, memory), module:function
                                    # or an MCP server's tools (mcp: {command | url})
    memory: {...}                   # store, namespace, guard
    cache: true | {...}             # the model-call cache (path, max_entries, max_mb, ...)
    agents: {name: agent}           # instructions + backend, or a remote agent (a2a: {url})
    inputs: {name: input}
    workflow: {kind: steps | planner | supervisor, ...}

Each section's models have a module of their own: ``_spec_backends``,
``_spec_tools`` (and ``tool_selection``), ``_spec_agents`` (memory and agents),
``_spec_kinds`` (the ``workflow:`` section, one model per kind); the file as a
whole, its inputs and policies are here, and every model is re-exported here.
Adding a workflow kind: define its model with ``kind: Literal[...]`` (as
:class:`SupervisorWorkflow` does), add it to :data:`WorkflowBody`, check its
references in ``_references`` and run it in ``_kinds`` (``RUNNERS``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from plait.policies import Policy

from ._spec_agents import (
    A2AAgentSpec,
    A2AEndpointSpec,
    AgentEntry,
    AgentSpec,
    GuardSpec,
    MemorySpec,
)
from ._spec_backends import (
    BackendSpec,
    LocalBackendSpec,
    OpenAIBackendSpec,
    PriceSpec,
    RouterBackendSpec,
    RuleSpec,
)
from ._spec_base import NAME_PATTERN, SpecModel
from ._spec_kinds import (
    ExecutorChoice,
    PlannerWorkflow,
    RayExecutorSpec,
    StepSpec,
    StepsWorkflow,
    SupervisorWorkflow,
    TeamRoleSpec,
    TeamSubtaskSpec,
    WorkerLimitsSpec,
    WorkflowBody,
)
from ._spec_tools import (
    BuiltinToolSpec,
    FunctionToolSpec,
    MCPServerSpec,
    MCPToolSpec,
    ToolEntry,
    ToolExampleSpec,
    ToolSelectionSpec,
    builtin_tool_names,
)

__all__ = [
    "A2AAgentSpec",
    "A2AEndpointSpec",
    "AgentEntry",
    "AgentSpec",
    "BackendSpec",
    "BuiltinToolSpec",
    "CacheChoice",
    "CacheSpec",
    "ExecutorChoice",
    "FunctionToolSpec",
    "GuardSpec",
    "InputSpec",
    "LocalBackendSpec",
    "MCPServerSpec",
    "MCPToolSpec",
    "MemorySpec",
    "NAME_PATTERN",
    "OpenAIBackendSpec",
    "PlannerWorkflow",
    "PolicySpec",
    "PriceSpec",
    "RayExecutorSpec",
    "RouterBackendSpec",
    "RuleSpec",
    "SpecModel",
    "StepSpec",
    "StepsWorkflow",
    "SupervisorWorkflow",
    "TeamRoleSpec",
    "TeamSubtaskSpec",
    "ToolEntry",
    "ToolExampleSpec",
    "ToolSelectionSpec",
    "WorkerLimitsSpec",
    "WorkflowBody",
    "WorkflowSpec",
    "builtin_tool_names",
    "workflow_json_schema",
]


class InputSpec(SpecModel):
    """A workflow input (``--input name=value``); without a default it is required."""

    type: Literal["string", "integer", "number", "boolean"] = "string"
    default: Any = None
    description: str = ""

    @field_validator("default")
    @classmethod
    def _default_has_the_type(cls, value: Any, info: ValidationInfo) -> Any:
        # Text converts as ``--input`` does (``${N}`` from the environment is text).
        kind = info.data.get("type")
        if value is None or kind is None:
            return value
        article = "an" if kind == "integer" else "a"
        if isinstance(value, str) and kind != "string":
            converted = _from_text(kind, value)
            if converted is None:
                raise ValueError(f"default must be {article} {kind}, got text that is not one")
            return converted
        fits = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }[kind]
        if not fits:
            hint = " (quote it to make it text)" if kind == "string" else ""
            raise ValueError(f"default must be {article} {kind}, got a {_yaml_type(value)}{hint}")
        return value


def _from_text(kind: str, text: str) -> Any:
    """``text`` as an integer, number or boolean, or ``None``."""
    word = text.strip()
    try:
        if kind == "integer":
            return int(word)
        if kind == "number":
            return float(word)
    except ValueError:
        return None
    return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
        word.lower()
    )


def _yaml_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}
    return names.get(type(value), "mapping" if isinstance(value, dict) else type(value).__name__)


class PolicySpec(SpecModel):
    """Which sources may reach a tool (or one of its arguments); checked before each call.

    Source patterns: ``untrusted``, ``trusted``, a kind (``user``, ``web``,
    ``tool``, ``mcp``, ``memory``, ``agent``), ``kind:name`` (``tool:http_get``,
    wildcards allowed) or ``kind:level`` (``memory:low``).
    """

    tool: str = Field(description="tool or agent name (shell-style wildcards allowed)")
    argument: str | None = Field(default=None, description="one argument (omitted: every one)")
    deny_from: list[str] = Field(default_factory=list, description="sources that must not reach it")
    allow_only: list[str] | None = Field(default=None, description="the only sources that may")
    on_violation: Literal["fail", "require_approval", "drop"] = "fail"

    @model_validator(mode="after")
    def _valid_policy(self) -> PolicySpec:
        self.to_policy()  # the SDK's own checks: a rule is given, patterns are valid
        return self

    def to_policy(self) -> Policy:
        """The SDK policy this entry stands for."""
        return Policy(
            tool=self.tool,
            argument=self.argument,
            deny_from=tuple(self.deny_from),
            allow_only=None if self.allow_only is None else tuple(self.allow_only),
            on_violation=self.on_violation,
        )


class CacheSpec(SpecModel):
    """The model-call cache: every model backend of the workflow answers repeats from it.

    ``cache: true`` is this with its defaults.
    """

    path: str | None = Field(
        default=None,
        description="a SQLite file shared across runs, relative to the workflow file "
        "(omitted: one file in each run's folder, so only a resumed run reuses it)",
    )
    max_entries: int | None = Field(default=None, ge=1, description="most answers kept")
    max_mb: float | None = Field(default=256.0, gt=0, description="most megabytes kept")
    nondeterministic: bool = Field(
        default=False, description="also cache calls sampled at temperature > 0 without a seed"
    )


def _cache_kind(value: Any) -> str:
    return "settings" if isinstance(value, (dict, CacheSpec)) else "switch"


CacheChoice = Annotated[
    Annotated[bool, Tag("switch")] | Annotated[CacheSpec, Tag("settings")],
    Discriminator(_cache_kind),
]


EntryName = Annotated[str, Field(pattern=NAME_PATTERN)]
"""The name of a backends, tools or agents entry."""


class WorkflowSpec(SpecModel):
    """A whole workflow file."""

    version: Literal[1] = 1
    name: str | None = None
    description: str = ""
    include: list[str] = Field(default_factory=list, description="files with more definitions")
    backends: dict[EntryName, BackendSpec] = Field(default_factory=dict)
    tools: dict[EntryName, ToolEntry] = Field(default_factory=dict)
    memory: MemorySpec | None = None
    agents: dict[EntryName, AgentEntry] = Field(default_factory=dict)
    inputs: dict[Annotated[str, Field(pattern=r"^[A-Za-z_]\w*$")], InputSpec] = Field(
        default_factory=dict
    )
    policies: list[PolicySpec] = Field(
        default_factory=list, description="which sources may reach which tool, checked in code"
    )
    default_policies: bool = Field(
        default=True,
        description="also refuse untrusted data in write_file, http_post and memory_remember",
    )
    cache: CacheChoice = Field(
        default=False, description="cache model calls: true, or {path, max_entries, max_mb}"
    )
    workflow: WorkflowBody

    @property
    def cache_spec(self) -> CacheSpec | None:
        """The ``cache`` entry with ``true`` spelled out (``None``: no cache)."""
        if isinstance(self.cache, CacheSpec):
            return self.cache
        return CacheSpec() if self.cache else None


def workflow_json_schema() -> dict[str, Any]:
    """JSON Schema of workflow files (for editors: yaml-language-server and the like)."""
    schema = WorkflowSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "plait workflow"
    return schema
