"""Adapters between plait tools and LangChain/LangGraph tools.

- :func:`from_langchain`: a LangChain ``BaseTool`` (``@tool``, ``StructuredTool``,
  a subclass) as a plait :class:`Tool`, so plait agents can use the LangChain
  tool ecosystem.
- :func:`as_langchain_tool` / :func:`as_langchain_tools`: plait tools as
  LangChain ``StructuredTool`` objects, for ``langgraph.prebuilt.ToolNode`` or
  any LangChain runtime. Calls go through a plait :class:`ToolRunner`, so
  plait's limits (timeout, output size, concurrency) and permissions still apply.

``langchain_core`` comes with ``langgraph``; it is imported only when an adapter
is used.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from plait.errors import ConfigError, ToolArgumentError, ToolError
from plait.messages import ToolCall

from ._registry import Toolset
from ._runtime import Permissions, ToolLimits, ToolRunner
from ._schema_tool import UNSET, json_schema_model
from ._tool import Tool, _check_name, _clean_schema, _describe

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool, StructuredTool

__all__ = ["as_langchain_tool", "as_langchain_tools", "from_langchain"]


def from_langchain(
    lc_tool: BaseTool,
    *,
    name: str | None = None,
    timeout_s: float | None = None,
    tags: Iterable[str] = (),
) -> Tool:
    """Wrap a LangChain tool as a plait :class:`Tool`.

    The schema is the one LangChain would show a model (``tool_call_schema``:
    injected arguments such as ``InjectedToolArg`` left out). Arguments are
    validated against it before the call, so a model's mistakes come back as
    :class:`ToolArgumentError` text it can fix. The tool runs through its async
    interface (a sync-only tool runs on LangChain's executor thread).

    Errors: a ``ToolException`` becomes :class:`ToolError`, a validation error
    inside the tool becomes :class:`ToolArgumentError`; other exceptions pass
    through (the :class:`ToolRunner` reports them to the model as failures).

    Args:
        lc_tool: the LangChain tool.
        name: the plait name (default: the tool's own name).
        timeout_s: a per-tool time limit overriding the runtime's default.
        tags: labels for filtering toolsets.

    Raises:
        ConfigError: the object is not a LangChain tool, or its name or schema
            cannot be used.
    """
    from langchain_core.tools import BaseTool, ToolException

    if not isinstance(lc_tool, BaseTool):
        raise ConfigError(
            f"from_langchain() needs a langchain_core BaseTool, got {type(lc_tool).__name__}"
        )
    tool_name = name or lc_tool.name
    _check_name(tool_name)
    try:
        call_schema = lc_tool.tool_call_schema
        if isinstance(call_schema, dict):
            raw = {k: v for k, v in call_schema.items() if k != "description"}
            args_model = json_schema_model(tool_name, raw)
        elif issubclass(call_schema, BaseModel):
            raw = call_schema.model_json_schema()
            # Defaults the model leaves out are filled in here as LangChain's own
            # validation would fill them, so passing them on changes nothing.
            args_model = call_schema
        else:
            raise TypeError("pydantic v1 argument schemas are not supported; use pydantic v2")
        parameters = _clean_schema(raw)
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(
            f"cannot read the argument schema of LangChain tool {tool_name!r}: {e}"
        ) from e

    async def invoke(**arguments: Any) -> Any:
        given = {k: v for k, v in arguments.items() if v is not UNSET}
        payload = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in given.items()}
        try:
            return await lc_tool.ainvoke(payload)
        except ToolException as e:
            raise ToolError(f"tool {tool_name!r} failed: {e}") from e
        except ValidationError as e:
            raise ToolArgumentError(tool_name, _describe(e)) from e

    invoke.__name__ = tool_name
    return Tool(
        name=tool_name,
        description=lc_tool.description or "",
        parameters=parameters,
        fn=invoke,
        args_model=args_model,
        timeout_s=timeout_s,
        tags=frozenset(tags),
    )


def as_langchain_tool(
    tool: Tool,
    *,
    runner: ToolRunner | None = None,
    agent: str | None = None,
) -> StructuredTool:
    """A plait tool as a LangChain ``StructuredTool`` (for LangGraph's ``ToolNode``).

    Every call goes through ``runner`` (default: a runner with default limits for
    this one tool): arguments are validated by plait, permissions are checked for
    ``agent``, and the timeout, output-size and concurrency limits apply. A
    failed call raises ``ToolException`` with plait's error text, which the
    LangChain tool turns into an error ``ToolMessage`` (status ``"error"``)
    the model can react to.

    Raises:
        ConfigError: ``runner`` does not hold this tool.
    """
    from langchain_core.tools import StructuredTool, ToolException

    runner = runner or ToolRunner([tool])
    if runner.tools.get(tool.name) is not tool:
        raise ConfigError(f"as_langchain_tool(): the runner given does not hold tool {tool.name!r}")

    async def call(**arguments: Any) -> str:
        call = ToolCall(name=tool.name, arguments=json.dumps(arguments, default=str))
        outcome = await runner.run(call, agent=agent)
        if outcome.error is not None:
            raise ToolException(outcome.content)
        return outcome.content

    return StructuredTool.from_function(
        coroutine=call,
        name=tool.name,
        description=tool.description or tool.name,
        args_schema=tool.parameters,
        handle_tool_error=True,
        handle_validation_error=True,
    )


def as_langchain_tools(
    tools: Toolset | Iterable[Tool],
    *,
    limits: ToolLimits | None = None,
    permissions: Permissions | None = None,
    agent: str | None = None,
) -> list[StructuredTool]:
    """Every tool ``agent`` may use, as LangChain tools sharing one plait runner.

    Sharing the runner makes ``limits.max_concurrency`` a cap across all of
    them, as when a plait agent runs the same tools. Tools ``agent`` may not
    use are left out (as a plait agent would not be shown them).
    """
    runner = ToolRunner(tools, limits, permissions)
    return [as_langchain_tool(t, runner=runner, agent=agent) for t in runner.allowed(agent)]
