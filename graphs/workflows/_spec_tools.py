"""The ``tools:`` section: built-in tool sets, ``module:function`` tools, MCP servers' tools;
and ``tool_selection:`` (how each model turn's tools are chosen)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from ._spec_base import SpecModel

__all__ = [
    "BuiltinToolSpec",
    "FunctionToolSpec",
    "MCPServerSpec",
    "MCPToolSpec",
    "ToolEntry",
    "ToolExampleSpec",
    "ToolSelectionSpec",
    "builtin_tool_names",
]


class BuiltinToolSpec(SpecModel):
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


class ToolExampleSpec(SpecModel):
    """A worked example of a tool: a request and the arguments of the call that answers it."""

    request: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class FunctionToolSpec(SpecModel):
    """A Python function as a tool, imported as ``module:function`` (named after the entry).

    The attribute may also be a plait tool, or a compiled LangGraph graph (its
    input state is the arguments, its final state the result).
    """

    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    description: str | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    examples: list[ToolExampleSpec] = Field(
        default_factory=list, description="requests and the arguments that answer them"
    )


class ToolSelectionSpec(SpecModel):
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


class MCPServerSpec(SpecModel):
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


class MCPToolSpec(SpecModel):
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
