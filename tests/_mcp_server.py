"""An MCP server for the MCP client tests, written with the SDK's server API.

``python _mcp_server.py`` serves over stdio; ``python _mcp_server.py --http PORT_FILE``
serves streamable HTTP on a free loopback port and writes the port to PORT_FILE.
With ``--token T`` (HTTP only) every request must carry ``Authorization: Bearer T``.

Its tools misbehave on request: ``crash`` kills the process mid-call,
``garbage`` writes a line that is not JSON-RPC where the answer should be,
``fail`` reports an error, ``slow`` sleeps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("plait-test", log_level="ERROR")
_stdout = sys.stdout  # the real stdout (the stdio transport), kept before the SDK diverts it


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str, times: int = 1) -> str:
    """Repeat a text."""
    return " ".join([text] * times)


@server.tool()
def environment(variable: str) -> str:
    """The value of an environment variable, or '(unset)'."""
    return os.environ.get(variable, "(unset)")


@server.tool()
def working_directory() -> str:
    """The server's working directory."""
    return os.getcwd()


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ToolError(f"failing on purpose: {reason}")


@server.tool()
def crash() -> str:
    """Kill the server process in the middle of the call."""
    print("crashing now", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool()
def garbage() -> str:
    """Write a line that is not JSON-RPC on the transport, then hang."""
    _stdout.write("this is not json-rpc\n")
    _stdout.flush()
    import time

    time.sleep(60)
    return "never"


async def _stdio() -> None:
    # Explicit streams keep fd 1 the transport, so 'garbage' can write on it.
    from mcp.server.stdio import stdio_server

    low = server._lowlevel_server
    stdin = anyio.wrap_file(sys.stdin)
    stdout = anyio.wrap_file(_stdout)
    async with stdio_server(stdin=stdin, stdout=stdout) as (read, write):
        await low.run(read, write, low.create_initialization_options())


async def _http(port_file: Path, token: str | None) -> None:
    import uvicorn
    from starlette.responses import PlainTextResponse

    app = server.streamable_http_app()
    if token is not None:
        inner = app

        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] == "http":
                headers = dict(scope.get("headers") or [])
                if headers.get(b"authorization") != f"Bearer {token}".encode():
                    await PlainTextResponse("missing or wrong token", 401)(scope, receive, send)
                    return
            await inner(scope, receive, send)

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    web = uvicorn.Server(config)
    task = asyncio.create_task(web.serve())
    while not web.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.05)
    port = web.servers[0].sockets[0].getsockname()[1]
    port_file.write_text(str(port))
    await task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=Path, metavar="PORT_FILE")
    parser.add_argument("--token")
    args = parser.parse_args()
    if args.http is not None:
        asyncio.run(_http(args.http, args.token))
    else:
        anyio.run(_stdio)


if __name__ == "__main__":
    main()
