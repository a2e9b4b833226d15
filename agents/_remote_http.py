"""The HTTP side of :class:`RemoteAgent`: a size-capped client, the agent card, error mapping.

Every response from a remote agent (its card, a reply, a whole event stream) is
read through :class:`_CappedTransport`, which stops reading at ``max_bytes``: a
remote agent that sends 100 MB costs at most the cap in memory. The a2a-sdk's
errors are mapped here, once, to plait's (:class:`~plait.errors.RemoteAgentError`
and its subclasses), each naming the agent's URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from a2a.client import A2ACardResolver, A2AClientError, A2AClientTimeoutError
from a2a.client.errors import AgentCardResolutionError
from a2a.types import AgentCard
from a2a.utils.errors import A2AError

from plait.errors import (
    RemoteAgentError,
    RemoteAgentProtocolError,
    RemoteAgentTimeout,
    RemoteAgentTooLarge,
)

__all__ = ["capped_client", "fetch_card", "is_unsent", "remote_error"]

JSONRPC = "JSONRPC"


class _CappedStream(httpx.AsyncByteStream):
    """A response body that raises :class:`RemoteAgentTooLarge` past ``limit`` bytes."""

    def __init__(self, stream: httpx.AsyncByteStream, url: str, limit: int) -> None:
        self.stream = stream
        self.url = url
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self.stream:
            received += len(chunk)
            if received > self.limit:
                raise RemoteAgentTooLarge(self.url, self.limit)
            yield chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


class _CappedTransport(httpx.AsyncBaseTransport):
    """Wraps httpx's transport: each response body is capped (a declared length at once)."""

    def __init__(self, url: str, limit: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.url = url
        self.limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await response.aclose()
            raise RemoteAgentTooLarge(self.url, self.limit)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(response.stream, self.url, self.limit)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def capped_client(
    url: str, *, token: str | None, timeout_s: float, connect_timeout_s: float, max_bytes: int
) -> httpx.AsyncClient:
    """The HTTP client of one remote agent: its token, timeouts and response cap."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=_CappedTransport(url, max_bytes),
        headers=headers,
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
    )


async def fetch_card(client: httpx.AsyncClient, url: str) -> AgentCard:
    """The agent card at ``url``'s well-known path, checked for what plait needs.

    Raises:
        RemoteAgentProtocolError: the card is not JSON, not a card, has no name
            or offers no JSON-RPC interface.
        RemoteAgentError: it could not be fetched (refused, HTTP error).
    """
    try:
        card = await A2ACardResolver(client, url).get_agent_card()
    except AgentCardResolutionError as e:
        cause = e.__cause__
        if isinstance(cause, httpx.TimeoutException):
            raise RemoteAgentTimeout(url, client.timeout.read or 0.0, "send its card") from e
        if e.status_code is not None or isinstance(cause, httpx.RequestError):
            raise RemoteAgentError(url, f"cannot fetch its agent card: {_reason(e)}") from e
        raise RemoteAgentProtocolError(url, f"its agent card is malformed: {_reason(e)}") from e
    except (ValueError, TypeError) as e:  # protobuf parsing a JSON value of the wrong shape
        raise RemoteAgentProtocolError(url, f"its agent card is malformed: {e}") from e
    if not card.name:
        raise RemoteAgentProtocolError(url, "its agent card is malformed: it has no name")
    if not any(i.protocol_binding == JSONRPC for i in card.supported_interfaces):
        offered = ", ".join(sorted({i.protocol_binding for i in card.supported_interfaces}))
        raise RemoteAgentProtocolError(
            url, f"its agent card offers no JSONRPC interface (offers: {offered or 'none'})"
        )
    return card


def _reason(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error)
    return text if len(text) <= 300 else text[:300] + "..."


def is_unsent(error: BaseException) -> bool:
    """Whether ``error`` means the request never reached the server (safe to send again).

    Only a refused or failed connection qualifies: once connected, the server may
    have accepted the message even if no answer came back.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (httpx.ConnectError, httpx.ConnectTimeout)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def remote_error(url: str, error: BaseException, timeout_s: float) -> RemoteAgentError:
    """The plait error for an a2a-sdk (or httpx) failure talking to ``url``."""
    if isinstance(error, RemoteAgentError):
        return error
    if isinstance(error, (A2AClientTimeoutError, httpx.TimeoutException)):
        return RemoteAgentTimeout(url, timeout_s)
    if is_unsent(error):
        return RemoteAgentError(url, f"cannot connect: {_reason(error)}")
    if isinstance(error, A2AClientError):
        return RemoteAgentProtocolError(url, _reason(error))
    if isinstance(error, A2AError):  # the server's JSON-RPC error (task not found, ...)
        return RemoteAgentError(url, f"{type(error).__name__}: {_reason(error)}")
    if isinstance(error, httpx.HTTPError):
        return RemoteAgentError(url, _reason(error))
    return RemoteAgentProtocolError(url, f"unreadable reply: {_reason(error)}")
