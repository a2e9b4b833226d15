"""HTTP GET/POST tools through httpx, limited to an allow-list of hosts (none by default)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from plait.errors import ToolError, ToolPermissionError

from ._registry import Toolset
from ._tool import tool

__all__ = ["http_tools"]


def http_tools(
    allowed_hosts: Iterable[str] = (),
    *,
    timeout_s: float = 10.0,
    max_response_chars: int = 20_000,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Toolset:
    """``http_get`` and ``http_post`` tools that may reach only ``allowed_hosts``.

    With no hosts every request is refused: network access is something you
    grant, host by host (``"api.example.com"`` or ``"127.0.0.1:8000"`` to pin a
    port). Redirects are not followed, so an allowed host cannot bounce a
    request elsewhere.

    Args:
        allowed_hosts: host names (optionally ``host:port``) requests may go to.
        timeout_s: per-request timeout.
        max_response_chars: longer bodies are cut.
        transport: an httpx transport (for tests or proxies).
    """
    allowed = {h.lower() for h in allowed_hosts}

    def check(url: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as e:
            raise ToolError(f"{url!r} is not a valid URL") from e
        if parsed.scheme not in ("http", "https"):
            raise ToolPermissionError(f"URL scheme {parsed.scheme!r} refused; use http or https")
        host = (parsed.host or "").lower()
        with_port = f"{host}:{parsed.port}" if parsed.port else host
        if host not in allowed and with_port not in allowed:
            shown = ", ".join(sorted(allowed)) or "none"
            raise ToolPermissionError(f"host {with_port!r} is not allowed (allowed: {shown})")
        return parsed

    async def send(method: str, url: str, body: Any = None) -> str:
        target = check(url)
        try:
            async with httpx.AsyncClient(
                timeout=timeout_s, follow_redirects=False, transport=transport
            ) as client:
                response = await client.request(method, target, json=body)
        except httpx.HTTPError as e:
            raise ToolError(f"{method} {url} failed: {type(e).__name__}: {e}") from e
        text = response.text
        if len(text) > max_response_chars:
            text = text[:max_response_chars] + "\n[... response truncated]"
        return f"HTTP {response.status_code}\n{text}"

    @tool(tags=("http",))
    async def http_get(url: str) -> str:
        """Fetch a URL with HTTP GET and return the status and body.

        Args:
            url: the full URL, e.g. "https://api.example.com/items?id=3".
        """
        return await send("GET", url)

    @tool(tags=("http",))
    async def http_post(url: str, body: dict[str, Any]) -> str:
        """Send a JSON object to a URL with HTTP POST and return the status and body.

        Args:
            url: the full URL.
            body: the JSON object to send.
        """
        return await send("POST", url, body)

    return Toolset([http_get, http_post])
