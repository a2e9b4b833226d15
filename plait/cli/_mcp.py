"""``plait mcp FILE``: a workflow's tools, and the workflow itself, as an MCP server.

Every tool the file declares (MCP servers' tools included) is offered under its
own name and runs through a :class:`~plait.tools.ToolRunner` (argument checks,
timeout, output cut). One more tool runs the whole workflow: its inputs are the
tool's parameters, its answer is the result, and each call is a recorded run
(``plait runs show ID``). Over stdio by default; ``--http`` serves streamable
HTTP on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plait._version import __version__
from plait.errors import ConfigError, PlaitError
from plait.messages import ToolCall

if TYPE_CHECKING:
    import mcp_types
    from mcp.server.lowlevel import Server

    from plait.graphs import Workflow
    from plait.tools import Toolset

__all__ = ["mcp_command", "mcp_server", "workflow_tool_name", "workflow_tool_schema"]

_HOST = "127.0.0.1"
_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


def mcp_command(args: argparse.Namespace) -> int:
    """Serve a workflow file over MCP until interrupted."""
    from plait.graphs import load_workflow

    if args.port is not None and not args.http:
        raise ConfigError("--port needs --http (without it plait mcp serves over stdio)")
    workflow = load_workflow(Path(args.file))
    if args.http:
        asyncio.run(_serve_http(workflow, args.port if args.port is not None else 8000))
    else:
        asyncio.run(_serve_stdio(workflow))
    return 0


def workflow_tool_name(workflow: Workflow) -> str:
    """The MCP tool that runs the workflow: its ``name``, else the file's name."""
    raw = workflow.spec.name or workflow.path.stem
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", raw).strip("_") or "workflow"
    return name if re.match(r"^[A-Za-z_]", name) else f"run_{name}"[:64]


def workflow_tool_schema(workflow: Workflow) -> dict[str, Any]:
    """The workflow's inputs as the JSON Schema of a tool's arguments."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in workflow.spec.inputs.items():
        prop: dict[str, Any] = {"type": _JSON_TYPES[spec.type]}
        if spec.description:
            prop["description"] = spec.description
        if spec.default is not None:
            prop["default"] = spec.default
        else:
            required.append(name)
        properties[name] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def mcp_server(workflow: Workflow, tools: Toolset) -> Server[Any]:
    """An MCP server (the SDK's low-level ``Server``) offering ``tools`` and the workflow."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from plait.tools import ToolRunner, render_result

    runner = ToolRunner(tools)
    run_name = workflow_tool_name(workflow)
    if run_name in tools:
        raise ConfigError(
            f"the workflow's MCP tool would be named {run_name!r}, like one of its tools; "
            "give the workflow another 'name'"
        )
    description = workflow.spec.description or f"Run the plait workflow {run_name!r}."
    listed = [
        types.Tool(name=t.name, description=t.description, input_schema=t.parameters) for t in tools
    ]
    listed.append(
        types.Tool(
            name=run_name,
            description=f"{description} Returns the workflow's answer.",
            input_schema=workflow_tool_schema(workflow),
        )
    )

    def text(content: str, *, error: bool = False) -> mcp_types.CallToolResult:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=content)], is_error=error
        )

    async def list_tools(
        _ctx: Any, _params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(
        _ctx: Any, params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        arguments = dict(params.arguments or {})
        if params.name == run_name:
            try:
                result = await workflow.arun(arguments)
            except PlaitError as e:  # bad inputs, or a misconfiguration found while running
                return text(f"Error: {e}", error=True)
            if not result.ok:
                return text(
                    f"Error: run {result.run_id} {result.status}: {result.error}", error=True
                )
            return text(render_result(result.answer))
        outcome = await runner.run(ToolCall(name=params.name, arguments=arguments))
        return text(outcome.content, error=outcome.error is not None)

    return Server(
        f"plait: {run_name}",
        version=__version__,
        instructions=workflow.spec.description or None,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def _serve_stdio(workflow: Workflow) -> None:
    from mcp.server.stdio import stdio_server

    async with workflow.connected_tools() as tools:
        server = mcp_server(workflow, tools)
        _announce(workflow, tools, "over stdio")
        # stdio_server points fd 1 at stderr while serving: nothing else reaches the wire.
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


async def _serve_http(workflow: Workflow, port: int) -> None:
    import uvicorn

    async with workflow.connected_tools() as tools:
        server = mcp_server(workflow, tools)
        app = server.streamable_http_app(host=_HOST)
        config = uvicorn.Config(app, host=_HOST, port=port, log_level="warning", lifespan="on")
        web = uvicorn.Server(config)
        serving = asyncio.create_task(web.serve())
        while not web.started and not serving.done():
            await asyncio.sleep(0.05)
        if web.started:
            bound = web.servers[0].sockets[0].getsockname()[1]
            _announce(workflow, tools, f"at http://{_HOST}:{bound}/mcp")
        try:
            await serving
        except SystemExit as e:  # uvicorn exits when it cannot bind
            raise ConfigError(f"plait mcp could not listen on {_HOST}:{port} (in use?)") from e


def _announce(workflow: Workflow, tools: Toolset, where: str) -> None:
    names = [*tools.names, workflow_tool_name(workflow)]
    print(
        f"plait mcp: serving {workflow.path} {where}; tools: {', '.join(names)}",
        file=sys.stderr,
        flush=True,
    )
