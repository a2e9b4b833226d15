"""One live MCP connection: the owner task that holds the SDK's transport and client."""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import AsyncExitStack
from typing import IO, TYPE_CHECKING, Any

from pydantic import ValidationError

from plait import tracing
from plait.errors import ConfigError, ToolError

if TYPE_CHECKING:
    from mcp import Client

    from ._mcp import MCPClient

__all__ = ["MCPConnection", "first_line"]

_STDERR_TAIL = 800


class MCPConnection:
    """One live MCP session (transport and client), owned by one task on one event loop.

    The SDK's transports hold anyio cancel scopes that must be entered and
    left by the same task; an owner task keeps them, so any task of the loop
    can start the session and any can stop it.
    """

    def __init__(self, owner: MCPClient) -> None:
        self.owner = owner
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._protocol_fault: str | None = None
        self._stderr: IO[str] | None = None
        self._stderr_tail = ""  # kept when the file is closed
        self._http_status: int | None = None  # the last HTTP error status the server sent

    @property
    def closed(self) -> bool:
        """No more requests can go through: stopped, failed or disconnected."""
        return self._stop.is_set() or self._task is None or self._task.done()

    def lost(self, error: Exception) -> bool:
        """Whether ``error`` means the connection is gone (it is then closed)."""
        from mcp_types.jsonrpc import CONNECTION_CLOSED

        if getattr(error, "code", None) == CONNECTION_CLOSED:
            self._stop.set()
        return self.closed

    def client(self) -> Client:
        if self._client is None:
            raise ToolError(f"MCP server {self.owner.name!r} {self.why_closed()}")
        return self._client

    async def start(self) -> None:
        attributes = {
            "plait.mcp.server": self.owner.name,
            "plait.mcp.transport": self.owner.transport,
        }
        with tracing.span(f"mcp_connect {self.owner.name}", attributes):
            await self._start()

    async def _start(self) -> None:
        owner = self.owner
        if owner.transport == "stdio":
            self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        self._task = asyncio.create_task(self._own(), name=f"MCP server {owner.name}")
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            await asyncio.wait(
                {self._task, ready},
                timeout=owner.connect_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except BaseException:
            await self.stop()
            raise
        finally:
            ready.cancel()
        if self._ready.is_set() and not self._task.done():
            return
        timed_out = not self._task.done()
        await self.stop()
        if isinstance(self._error, ConfigError):
            self.release()
            raise self._error
        if timed_out:
            why = f"did not finish starting within {owner.connect_timeout_s:g} s"
        else:
            why = f"could not be started: {self._start_failure()}"
        message = f"MCP server {owner.name!r} {why}{self.stderr_tail()}"
        self.release()
        raise ToolError(message) from self._error

    async def stop(self) -> None:
        self._stop.set()
        task = self._task
        if task is not None and not task.done():
            if not self._ready.is_set():
                task.cancel()  # still in the handshake, which does not watch the stop event
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise  # this task is being cancelled, not the owner

    def release(self) -> None:
        """Close the captured stderr, keeping its tail for messages."""
        if self._stderr is not None:
            self._stderr_tail = self.stderr_tail()
            self._stderr.close()
            self._stderr = None

    def http_status(self) -> str:
        return f" (HTTP {self._http_status})" if self._http_status is not None else ""

    def why_closed(self) -> str:
        if self._protocol_fault is not None:
            return f"sent something that is not MCP ({self._protocol_fault}); plait disconnected"
        if self.owner.transport == "stdio":
            return "closed the connection (the server process exited or crashed)"
        return "closed the connection (the server went away or the HTTP request failed)"

    def stderr_tail(self) -> str:
        if self._stderr is None:
            return self._stderr_tail
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read().strip()
        except (OSError, ValueError):
            return ""
        lines = [" ".join(line.split()) for line in text.splitlines()]
        tail = " | ".join(line for line in lines[-8:] if line)[-_STDERR_TAIL:]
        return f"; its stderr ends with: {tail}" if tail else ""

    def _start_failure(self) -> str:
        error = _innermost(self._error)
        from mcp import MCPError

        if isinstance(error, FileNotFoundError) and self.owner.command:
            return f"command {self.owner.command[0]!r} not found"
        if isinstance(error, MCPError):
            if self._http_status is not None:
                return f"it answered HTTP {self._http_status} ({error})"
            if self._protocol_fault is not None:
                return f"it sent something that is not MCP ({self._protocol_fault})"
            return f"it closed the connection before the MCP handshake finished ({error})"
        if error is None:
            return "it stopped before the MCP handshake finished"
        if isinstance(error, (OSError, ConnectionError)) or type(error).__module__.startswith(
            "httpx"
        ):
            return f"cannot connect: {type(error).__name__}: {first_line(error)}"
        return f"{type(error).__name__}: {first_line(error)}"

    async def _own(self) -> None:
        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(await self._connect(stack))
                self._client = client
                self._ready.set()
                await self._stop.wait()
        except Exception as e:  # the failure is reported to whoever waits on the session
            self._error = e
        finally:
            self._client = None
            self._stop.set()
            self.release()  # the process is gone: nothing more will be written

    async def _connect(self, stack: AsyncExitStack) -> Client:
        from mcp import Client

        owner = self.owner
        if owner.command is not None:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            params = StdioServerParameters(
                command=owner.command[0],
                args=owner.command[1:],
                env=owner._stdio_environment(),
                cwd=owner.cwd,
            )
            assert self._stderr is not None
            transport: Any = stdio_client(params, errlog=self._stderr)  # type: ignore[arg-type]
        else:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            assert owner.url is not None

            async def note_status(response: httpx2.Response) -> None:
                if response.status_code >= 400:
                    self._http_status = response.status_code

            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=owner._http_headers(),
                    timeout=httpx2.Timeout(30.0, read=300.0),
                    event_hooks={"response": [note_status]},
                )
            )
            transport = streamable_http_client(owner.url, http_client=http)
        return Client(transport, message_handler=self._on_message)

    async def _on_message(self, message: Any) -> None:
        # Transport faults arrive here as exceptions: a line that is not JSON-RPC.
        if isinstance(message, Exception) and not self._stop.is_set():
            self._protocol_fault = _fault(message)
            self._stop.set()


def _fault(error: Exception) -> str:
    """What was wrong with a message the server sent."""
    if isinstance(error, ValidationError):
        for item in error.errors():
            given = item.get("input")
            if isinstance(given, str):
                return f"the line {given[:120]!r} is not JSON-RPC"
    return first_line(error)


def _innermost(error: BaseException | None) -> BaseException | None:
    """The one real error inside anyio's exception groups."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def first_line(error: BaseException) -> str:
    error = _innermost(error) or error
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
