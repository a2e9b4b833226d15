"""Tools from MCP servers (the Model Context Protocol, on the official ``mcp`` SDK).

:class:`MCPClient` speaks to one server, started as a subprocess (stdio) or
reached at a URL (streamable HTTP), and turns each tool it lists into a plait
:class:`~plait.tools.Tool`. The tools are ordinary plait tools: a
:class:`~plait.tools.ToolRunner` checks their arguments against the server's
input schema, applies permissions, timeouts, output truncation and its
concurrency cap, and traces every call.

Lifecycle: a client holds at most one session per event loop, shared by every
call made on that loop. The session starts on first use (listing or calling
tools) and stops on :meth:`MCPClient.aclose` (or leaving ``async with``), or
when its event loop ends. A session that dies (the server crashed or answered
something that is not MCP) is replaced by a fresh one on the next call.
Workflows open one client per server per run (see ``plait.graphs``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from weakref import WeakKeyDictionary

from pydantic import ValidationError

from plait._sync import run_sync
from plait.errors import ConfigError, ToolError

from ._jsonschema import UNSET, json_schema_model
from ._mcp_connection import MCPConnection, first_line
from ._registry import Toolset
from ._tool import Tool, _clean_schema

if TYPE_CHECKING:
    import mcp_types

__all__ = ["MCPClient", "mcp_tools"]

# The SDK logs protocol faults with tracebacks; plait reports them as ToolErrors
# instead. A NullHandler keeps Python's last-resort handler from printing them
# when the application configured no logging (configured logging still sees them).
logging.getLogger("mcp").addHandler(logging.NullHandler())

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
_MAX_PAGES = 100


class MCPClient:
    """A connection to one MCP server, and its tools as plait tools.

    Give either ``command`` (a stdio server, run as a subprocess) or ``url``
    (a streamable-HTTP server)::

        async with MCPClient(["python", "server.py"], name="notes") as notes:
            agent = Agent("helper", "...", backend, tools=await notes.tools())
            await agent.arun("...")

    Args:
        command: the program and its arguments, e.g. ``["npx", "server"]``.
        url: the server's MCP endpoint, e.g. ``"http://127.0.0.1:8000/mcp"``.
        name: the server's name in errors (default: the command or URL).
        cwd: the subprocess's working directory (default: this process's).
        env: variables added to this process's environment for the subprocess.
        headers: HTTP headers sent with every request.
        headers_env: HTTP headers whose values are read from environment
            variables when the session starts (``{"Authorization": "API_TOKEN"}``),
            so secrets stay out of files.
        include: keep only these tools (by the server's names).
        exclude: leave out these tools.
        timeout_s: each tool's time limit (default: the runner's).
        connect_timeout_s: how long starting the session may take.
        tags: extra tags for every tool (they always carry ``"mcp"``).

    Raises:
        ConfigError: neither or both of ``command`` and ``url``, an empty
            command, or a URL that is not http(s).
    """

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        url: str | None = None,
        name: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        headers_env: Mapping[str, str] | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        timeout_s: float | None = None,
        connect_timeout_s: float = 30.0,
        tags: Iterable[str] = (),
    ) -> None:
        if (command is None) == (url is None):
            raise ConfigError(
                "an MCP server needs exactly one of 'command' (stdio) or 'url' (HTTP)"
            )
        if command is not None and (
            isinstance(command, str) or not command or not all(isinstance(c, str) for c in command)
        ):
            raise ConfigError(
                f"an MCP server's command must be a non-empty list of strings, got {command!r}"
            )
        if url is not None and not re.match(r"^https?://", url):
            raise ConfigError(
                f"an MCP server's url must start with http:// or https://, got {url!r}"
            )
        if connect_timeout_s <= 0 or (timeout_s is not None and timeout_s <= 0):
            raise ConfigError("MCP timeouts must be positive")
        self.command = list(command) if command is not None else None
        self.url = url
        self.name = name or (" ".join(self.command) if self.command else str(url))
        self.cwd = Path(cwd) if cwd is not None else None
        self.env = dict(env or {})
        self.headers = dict(headers or {})
        self.headers_env = dict(headers_env or {})
        self.include = None if include is None else list(include)
        self.exclude = set(exclude)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.tags = frozenset({"mcp", *tags})
        self._sessions: WeakKeyDictionary[asyncio.AbstractEventLoop, MCPConnection] = (
            WeakKeyDictionary()
        )
        self._locks: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            WeakKeyDictionary()
        )

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """How plait reaches the server."""
        return "stdio" if self.command is not None else "http"

    def __repr__(self) -> str:
        return f"MCPClient({self.name!r}, transport={self.transport!r})"

    async def __aenter__(self) -> MCPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def tools(self) -> Toolset:
        """The server's tools (after ``include``/``exclude``), starting the session if needed.

        Raises:
            ToolError: the server could not be started or reached, or its
                listing is not valid MCP (each message names the server).
            ConfigError: ``include`` names a tool the server does not have.
        """
        listed = await self._list()
        names = [t.name for t in listed]
        if self.include is not None:
            missing = [n for n in self.include if n not in names]
            if missing:
                raise ConfigError(
                    f"MCP server {self.name!r} has no tool(s) {', '.join(map(repr, missing))}; "
                    f"it offers: {', '.join(names) or '(none)'}"
                )
            by_name = {t.name: t for t in listed}
            listed = [by_name[n] for n in dict.fromkeys(self.include)]
        return Toolset(self._as_tool(t) for t in listed if t.name not in self.exclude)

    def tools_sync(self) -> Toolset:
        """Blocking :meth:`tools`: lists the tools in a short session of its own.

        The tools then start a session on the event loop of whichever run
        calls them (a blocking ``agent.run()`` has one of its own), stopped
        when that loop ends.
        """

        async def listed_once() -> Toolset:
            try:
                return await self.tools()
            finally:
                await self.aclose()

        return run_sync(
            listed_once(), name="MCPClient.tools_sync()", instead="await client.tools()"
        )

    async def call(self, tool: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Call ``tool`` on the server (by the server's name), without argument checks.

        Returns:
            The text of the result (its text parts joined), or its structured
            content when it has no text.

        Raises:
            ToolError: the server reported an error, stopped during the call,
                or answered something that is not a valid MCP result.
        """
        session = await self._session()
        from mcp import MCPError

        try:
            result = await session.client().call_tool(tool, dict(arguments or {}))
        except MCPError as e:
            if session.lost(e):
                raise ToolError(
                    f"MCP server {self.name!r} {session.why_closed()} during the call to "
                    f"{tool!r}{session.stderr_tail()}"
                ) from e
            status = session.http_status()
            raise ToolError(
                f"MCP server {self.name!r} refused the call to {tool!r}: {e.message}{status}"
            ) from e
        except (ValidationError, RuntimeError) as e:
            # The SDK checks results against the protocol and the tool's output schema.
            raise ToolError(
                f"MCP server {self.name!r} answered the call to {tool!r} with an invalid "
                f"result: {first_line(e)}"
            ) from e
        finally:
            if session.closed:
                await session.stop()
        return _result(self.name, tool, result)

    async def aclose(self) -> None:
        """Stop this event loop's session (the others stop with their loops)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.stop()
            session.release()

    async def _list(self) -> list[mcp_types.Tool]:
        session = await self._session()
        from mcp import MCPError

        listed: list[mcp_types.Tool] = []
        cursor: str | None = None
        try:
            for _ in range(_MAX_PAGES):
                page = await session.client().list_tools(cursor=cursor)
                listed += page.tools
                cursor = page.next_cursor
                if cursor is None:
                    break
        except (MCPError, ValidationError, RuntimeError) as e:
            lost = isinstance(e, MCPError) and session.lost(e)
            why = session.why_closed() if lost or session.closed else f"failed: {first_line(e)}"
            raise ToolError(
                f"MCP server {self.name!r} could not list its tools: it {why}"
                f"{session.stderr_tail()}"
            ) from e
        finally:
            if session.closed:
                await session.stop()
        return listed

    async def _session(self) -> MCPConnection:
        loop = asyncio.get_running_loop()
        # A session refers to its loop (through its task), so the weak keys of
        # finished loops never die by themselves: drop them here.
        for ended in [other for other in self._sessions if other.is_closed()]:
            self._sessions.pop(ended).release()
        for ended in [other for other in self._locks if other.is_closed()]:
            del self._locks[ended]
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        async with lock:
            session = self._sessions.get(loop)
            if session is not None and not session.closed:
                return session
            if session is not None:
                await session.stop()
                session.release()
            session = MCPConnection(self)
            await session.start()
            self._sessions[loop] = session
            return session

    def _as_tool(self, listed: mcp_types.Tool) -> Tool:
        name = _plait_name(listed.name)
        raw = copy.deepcopy(listed.input_schema) or {"type": "object"}
        try:
            args_model = json_schema_model(name, raw)
            shown = {k: v for k, v in copy.deepcopy(raw).items() if k != "$schema"}
            parameters = _clean_schema(shown)
        except (ValueError, KeyError) as e:
            raise ToolError(
                f"MCP server {self.name!r} lists tool {listed.name!r} with an input schema "
                f"plait cannot use: {e}"
            ) from e
        remote = listed.name

        async def call_remote(**arguments: Any) -> Any:
            return await self.call(remote, {k: v for k, v in arguments.items() if v is not UNSET})

        call_remote.__name__ = name
        return Tool(
            name=name,
            description=listed.description or listed.title or "",
            parameters=parameters,
            fn=call_remote,
            args_model=args_model,
            timeout_s=self.timeout_s,
            tags=self.tags,
        )

    def _stdio_environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _http_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        for header, variable in self.headers_env.items():
            value = os.environ.get(variable)
            if value is None:
                raise ConfigError(
                    f"MCP server {self.name!r}: header {header!r} comes from environment "
                    f"variable {variable!r}, which is not set"
                )
            headers[header] = value
        return headers


@asynccontextmanager
async def mcp_tools(
    command: Sequence[str] | None = None,
    *,
    url: str | None = None,
    name: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    headers_env: Mapping[str, str] | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    timeout_s: float | None = None,
    connect_timeout_s: float = 30.0,
) -> AsyncIterator[Toolset]:
    """An MCP server's tools for the duration of an ``async with`` block.

    ``async with mcp_tools(["python", "server.py"]) as tools: ...`` starts the
    server, lists its tools and stops it when the block ends. The arguments
    are :class:`MCPClient`'s; use the client directly to keep a server across
    blocks or to list tools from blocking code.

    Raises:
        ToolError: the server could not be started or its listing is invalid.
        ConfigError: a bad configuration, or ``include`` names an unknown tool.
    """
    client = MCPClient(
        command,
        url=url,
        name=name,
        cwd=cwd,
        env=env,
        headers=headers,
        headers_env=headers_env,
        include=include,
        exclude=exclude,
        timeout_s=timeout_s,
        connect_timeout_s=connect_timeout_s,
    )
    async with client:
        yield await client.tools()


def _result(server: str, tool: str, result: mcp_types.CallToolResult) -> Any:
    texts = [_content_text(block) for block in result.content]
    text = "\n".join(t for t in texts if t)
    if result.is_error:
        raise ToolError(f"MCP server {server!r}: tool {tool!r} failed: {text or '(no message)'}")
    if not text and result.structured_content is not None:
        return result.structured_content
    return text


def _content_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        size = len(getattr(block, "data", "") or "") * 3 // 4
        return f"[{kind}: {getattr(block, 'mime_type', '?')}, about {size} bytes]"
    if kind == "resource_link":
        return f"[resource: {block.uri}]"
    if kind == "resource":
        inner = block.resource
        text = getattr(inner, "text", None)
        return str(text) if text is not None else f"[resource: {inner.uri}]"
    return f"[{kind or 'content'}]"


def _plait_name(name: str) -> str:
    """An MCP tool name as a valid plait tool name (other characters become '_')."""
    cleaned = _NAME_CHARS.sub("_", name) or "tool"
    if not re.match(r"^[A-Za-z_]", cleaned):
        cleaned = f"t_{cleaned}"
    return cleaned[:64]
