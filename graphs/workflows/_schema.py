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

Adding a workflow kind: define its model with ``kind: Literal[...]`` (as
:class:`SupervisorWorkflow` does), add it to :data:`WorkflowBody`, check its
references in ``_checks`` and run it in ``_kinds`` (``RUNNERS``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from plait.policies import Policy

__all__ = [
    "A2AAgentSpec",
    "A2AEndpointSpec",
    "AgentEntry",
    "AgentSpec",
    "BackendSpec",
    "BuiltinToolSpec",
    "CacheSpec",
    "FunctionToolSpec",
    "GuardSpec",
    "InputSpec",
    "LocalBackendSpec",
    "MCPServerSpec",
    "MCPToolSpec",
    "MemorySpec",
    "OpenAIBackendSpec",
    "PlannerWorkflow",
    "PriceSpec",
    "RouterBackendSpec",
    "RuleSpec",
    "StepSpec",
    "StepsWorkflow",
    "SupervisorWorkflow",
    "TeamRoleSpec",
    "TeamSubtaskSpec",
    "ToolEntry",
    "ToolExampleSpec",
    "ToolSelectionSpec",
    "WorkflowBody",
    "WorkflowSpec",
    "WorkerLimitsSpec",
    "builtin_tool_names",
    "workflow_json_schema",
]

_NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceSpec(_Spec):
    """What a backend charges per 1,000 tokens (local models: nothing)."""

    prompt_per_1k: float = Field(default=0.0, ge=0)
    completion_per_1k: float = Field(default=0.0, ge=0)
    cached_prompt_per_1k: float | None = Field(default=None, ge=0)


class LocalBackendSpec(_Spec):
    """A GGUF model on the local llama.cpp engine (``model`` omitted: the embedded default)."""

    kind: Literal["local"]
    model: str | None = Field(default=None, description="GGUF file; relative to the workflow file")
    n_ctx: int | None = Field(default=None, ge=64)
    n_threads: int | None = Field(default=None, ge=1)
    n_seq_max: int | None = Field(default=None, ge=1, le=256)
    temperature: float = Field(default=0.2, ge=0)
    kv_type_k: str | None = None
    kv_type_v: str | None = None
    prefix_cache: bool | None = None


class OpenAIBackendSpec(_Spec):
    """Any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp server, Ollama)."""

    kind: Literal["openai"]
    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY", description="environment variable holding the API key"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(
        default=60.0, gt=0, description="one deadline per try (connect, headers, whole body)"
    )
    max_response_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1, description="largest response body read"
    )
    max_attempts: int = Field(default=3, ge=1)
    price: PriceSpec | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # The URL is not quoted back: it may hold a ${SECRET}.
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        return value


class RuleSpec(_Spec):
    """One rule of a ``rules`` router: every condition given must hold."""

    backend: str
    agent: str | None = Field(default=None, description="glob on the calling agent's name")
    tags: list[str] = Field(default_factory=list)
    pattern: str | None = Field(default=None, description="regex searched in the last message")


class RouterBackendSpec(_Spec):
    """A router: a backend that picks one of the other backends per request.

    ``policy: fallback`` tries ``chain`` in order; ``rules`` sends a request to
    the first matching rule's backend, else ``default``; ``threshold`` sends
    requests scoring at least ``threshold`` to ``strong``, the rest to ``cheap``.
    ``budget`` caps the cost of the run (prices come from the backends).
    """

    kind: Literal["router"]
    policy: Literal["fallback", "rules", "threshold"]
    chain: list[str] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    default: str | None = None
    cheap: str | None = None
    strong: str | None = None
    threshold: float = Field(default=0.5, ge=0, le=1)
    budget: float | None = Field(default=None, ge=0)
    agent_budgets: dict[str, float] = Field(default_factory=dict)


BackendSpec = Annotated[
    LocalBackendSpec | OpenAIBackendSpec | RouterBackendSpec, Field(discriminator="kind")
]


class BuiltinToolSpec(_Spec):
    """A built-in tool set.

    ``calculator``: arithmetic. ``files``: ``read_file``/``write_file`` inside
    ``root`` (relative to the workflow file), plus ``list_files`` and
    ``search_files``. ``http``: ``http_get``/``http_post`` to ``allowed_hosts``
    only. ``memory``: ``memory_search``/``memory_remember`` on the workflow memory.
    """

    builtin: Literal["calculator", "files", "http", "memory"]
    description: str | None = Field(
        default=None, description="added to each tool's description (what the files are...)"
    )
    root: str | None = None
    read_only: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)
    timeout_s: float | None = Field(default=None, gt=0)


class ToolExampleSpec(_Spec):
    """A worked example of a tool: a request and the arguments of the call that answers it."""

    request: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class FunctionToolSpec(_Spec):
    """A Python function as a tool, imported as ``module:function`` (named after the entry)."""

    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    description: str | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    examples: list[ToolExampleSpec] = Field(
        default_factory=list, description="requests and the arguments that answer them"
    )


class ToolSelectionSpec(_Spec):
    """How the tools of each model turn are chosen; a bare policy name works too.

    ``model``: the model chooses among all. ``embedding``: the embedder fixes the
    tool when it leads by ``margin``. ``hybrid``: the embedder shortlists ``k``,
    the model chooses (a lead of ``fix_margin`` fixes the tool).
    """

    policy: Literal["model", "embedding", "hybrid"]
    k: int = Field(default=3, ge=1)
    margin: float = Field(default=0.02, ge=0)
    fix_margin: float | None = Field(default=0.05, ge=0)
    examples: int = Field(default=3, ge=0, description="worked examples shown per turn")

    @model_validator(mode="before")
    @classmethod
    def _bare_policy(cls, value: Any) -> Any:
        return {"policy": value} if isinstance(value, str) else value


class MCPServerSpec(_Spec):
    """How to reach an MCP server: ``command`` (stdio) or ``url`` (streamable HTTP)."""

    command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="program and arguments, run in the workflow file's folder (stdio)",
    )
    url: str | None = Field(
        default=None, pattern=r"^https?://", description="the MCP endpoint (streamable HTTP)"
    )
    cwd: str | None = Field(
        default=None, description="the command's folder, relative to the workflow file"
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="variables added to plait's environment (stdio)"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="HTTP headers; secrets as ${NAME} from the environment"
    )
    connect_timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
        if self.command is None and (self.env or self.cwd):
            raise ValueError("'env' and 'cwd' apply to a 'command' server only")
        if self.url is None and self.headers:
            raise ValueError("'headers' apply to a 'url' server only")
        return self


class MCPToolSpec(_Spec):
    """An MCP server's tools, named as the server names them.

    The server starts when a run begins (its tool list goes into prompts and
    plans) and stops when the run ends: one session per run.
    """

    mcp: MCPServerSpec
    include: list[str] | None = Field(default=None, description="only these tools")
    exclude: list[str] = Field(default_factory=list, description="leave out these tools")
    timeout_s: float | None = Field(default=None, gt=0, description="each call's time limit")


def _tool_kind(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("function", "mcp"):
            if key in value:
                return key
        return "builtin"
    if isinstance(value, FunctionToolSpec):
        return "function"
    return "mcp" if isinstance(value, MCPToolSpec) else "builtin"


ToolEntry = Annotated[
    Annotated[BuiltinToolSpec, Tag("builtin")]
    | Annotated[FunctionToolSpec, Tag("function")]
    | Annotated[MCPToolSpec, Tag("mcp")],
    Discriminator(_tool_kind),
]


def builtin_tool_names(spec: BuiltinToolSpec) -> list[str]:
    """The names of the tools a built-in entry provides (as plans and steps call them)."""
    if spec.builtin == "calculator":
        return ["calculator"]
    if spec.builtin == "files":
        names = ["list_files", "read_file", "search_files"]
        return names if spec.read_only else [*names, "write_file"]
    if spec.builtin == "http":
        return ["http_get", "http_post"]
    return ["memory_remember", "memory_search"]


class GuardSpec(_Spec):
    """MemoryGuard settings: ``judge`` names a backend (omitted: compare texts only)."""

    judge: str | None = None
    strict: bool = False
    quarantine: list[Literal["tool", "web", "external", "agent"]] = Field(
        default_factory=list, description="sources stored quarantined"
    )


class MemorySpec(_Spec):
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


class AgentSpec(_Spec):
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


class A2AEndpointSpec(_Spec):
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


class A2AAgentSpec(_Spec):
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


class InputSpec(_Spec):
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


class StepSpec(_Spec):
    """One step: run an agent on ``input``, or call a tool with ``args``.

    Values may refer to inputs (``${inputs.question}``) and to the results of
    earlier steps (``${research}``); referenced steps become dependencies.
    """

    id: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    agent: str | None = None
    tool: str | None = None
    input: str | None = Field(default=None, description="the agent's task")
    args: dict[str, Any] = Field(default_factory=dict, description="the tool's arguments")
    depends_on: list[str] = Field(default_factory=list)
    timeout_s: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0)
    continue_on_error: bool = False
    requires_approval: bool = Field(
        default=False,
        description="a reviewer approves, rejects or edits the step before it runs (plait serve)",
    )


class RayExecutorSpec(_Spec):
    """Run tasks on a Ray cluster where they can travel; the rest stay on the driver.

    Tool calls and agents whose backends talk to a server (OpenAI-compatible
    ones, ``RayModelPool``) run in Ray workers, which must be able to import
    the tools. An agent on an in-process model (a local backend, a router),
    with memory, or with memory or MCP tools, and those tools themselves, run
    in the driver process; ``plait validate`` lists them with the reason.
    """

    kind: Literal["ray"]
    address: str | None = Field(
        default=None,
        description="'auto' (the cluster of `ray start`), 'ray://host:10001', or omitted "
        "for a local cluster",
    )
    num_cpus: float = Field(default=1.0, gt=0, description="CPUs one task reserves")


ExecutorChoice = Literal["local", "ray"] | RayExecutorSpec
"""``executor:`` of steps and planner workflows: ``local`` (default), ``ray``, or
``{kind: ray, address: ..., num_cpus: ...}``."""


class StepsWorkflow(_Spec):
    """A static DAG of steps, run by the eager executor (parallel where possible)."""

    kind: Literal["steps"]
    steps: list[StepSpec] = Field(min_length=1)
    output: str | None = Field(
        default=None, description="the answer, e.g. '${summary}' (default: the last step)"
    )
    max_concurrency: int = Field(default=8, ge=1)
    executor: ExecutorChoice = "local"


class PolicySpec(_Spec):
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


class PlannerWorkflow(_Spec):
    """LLMCompiler: a planner writes a DAG of calls to the tools and agents listed."""

    kind: Literal["planner"]
    question: str = Field(description="usually '${inputs.question}'")
    backend: str | None = Field(default=None, description="planner backend (omitted: default)")
    joiner: str | None = None
    tools: list[str] = Field(default_factory=list, description="tools entries offered to plans")
    agents: list[str] = Field(default_factory=list, description="agents offered to plans")
    plan_format: Literal["json", "text"] = "json"
    max_replans: int = Field(default=1, ge=0)
    max_tasks: int = Field(default=8, ge=1)
    executor: ExecutorChoice = "local"
    mode: Literal["default", "plan_then_execute"] = Field(
        default="default",
        description="plan_then_execute: untrusted results never reach the joiner or a replan",
    )
    tool_selection: ToolSelectionSpec | None = Field(
        default=None, description="model | embedding | hybrid (omitted: by backend)"
    )
    requires_approval: list[str] = Field(
        default_factory=list,
        description="tools (or tools entries) whose planned calls wait for a reviewer's "
        "approve, reject or edit (plait serve); without a reviewer they are rejected",
    )


class WorkerLimitsSpec(_Spec):
    """Limits of each worker a supervisor hires."""

    max_steps: int = Field(default=4, ge=1)
    max_turn_tokens: int = Field(default=512, ge=1)
    timeout_s: float | None = Field(default=120.0, gt=0)


class TeamRoleSpec(_Spec):
    """A worker role of a fixed team plan."""

    name: str = Field(pattern=_NAME)
    instructions: str = Field(min_length=1, max_length=600)


class TeamSubtaskSpec(_Spec):
    """One subtask of a fixed team plan (``needs``: earlier subtask ids whose results it reads)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    task: str = Field(min_length=1, description="may use ${inputs.NAME}")
    role: TeamRoleSpec | None = None
    agent: str | None = Field(default=None, description="an agents entry to delegate to")
    hard: bool = Field(default=False, description="start on the second worker tier")
    needs: list[str] = Field(default_factory=list)


class SupervisorWorkflow(_Spec):
    """A supervisor team (:class:`plait.agents.Supervisor` on the DAG executor).

    The lead plans (unless ``plan`` fixes the subtasks), hires each worker on the
    cheapest ``workers`` tier that fits ``budget``, reviews and aggregates. The
    ``brief`` comes first in every prompt of the team: one pinned KV prefix.
    """

    kind: Literal["supervisor"]
    goal: str = Field(description="usually '${inputs.task}'")
    name: str = Field(default="lead", pattern=_NAME, description="the supervisor's name")
    backend: str | None = Field(default=None, description="the lead's backend (omitted: default)")
    workers: list[str] = Field(
        default_factory=list, description="worker backend tiers, cheapest first (omitted: backend)"
    )
    brief: str = Field(default="", description="the team brief, first in every team prompt")
    agents: list[str] = Field(default_factory=list, description="agents the plan may delegate to")
    reviewer: str | None = Field(
        default=None, description="a backend that reviews each result (omitted: accept all)"
    )
    plan: list[TeamSubtaskSpec] | None = Field(
        default=None, min_length=1, max_length=12, description="fixed subtasks (no planning call)"
    )
    budget: float | None = Field(default=None, ge=0, description="cap on the team's cost")
    max_depth: int = Field(default=2, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    aggregate: bool = Field(default=True, description="combine with a model call; false: join")
    temperature: float | None = Field(default=None, ge=0)
    worker_limits: WorkerLimitsSpec = Field(default_factory=WorkerLimitsSpec)
    max_concurrency: int = Field(default=8, ge=1)
    mode: Literal["default", "plan_then_execute"] = Field(
        default="default",
        description="plan_then_execute: results resting on untrusted data never reach the "
        "reviewer or the aggregator's wording",
    )


WorkflowBody = Annotated[
    StepsWorkflow | PlannerWorkflow | SupervisorWorkflow, Field(discriminator="kind")
]


class CacheSpec(_Spec):
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


class WorkflowSpec(_Spec):
    """A whole workflow file."""

    version: Literal[1] = 1
    name: str | None = None
    description: str = ""
    include: list[str] = Field(default_factory=list, description="files with more definitions")
    backends: dict[Annotated[str, Field(pattern=_NAME)], BackendSpec] = Field(default_factory=dict)
    tools: dict[Annotated[str, Field(pattern=_NAME)], ToolEntry] = Field(default_factory=dict)
    memory: MemorySpec | None = None
    agents: dict[Annotated[str, Field(pattern=_NAME)], AgentEntry] = Field(default_factory=dict)
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
