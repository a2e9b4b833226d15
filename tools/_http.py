"""HTTP GET/POST tools through httpx, limited to an allow-list of hosts (none by default)."""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
from collections.abc import Iterable
from typing import Any

import httpx

from plait._http import read_capped
from plait.errors import ConfigError, ToolError, ToolPermissionError, ToolTimeout

from ._registry import Toolset
from ._tool import tool

__all__ = ["http_tools"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRUNCATED = "\n[... response truncated]"


def http_tools(
    allowed_hosts: Iterable[str] = (),
    *,
    timeout_s: float = 10.0,
    max_response_chars: int = 20_000,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Toolset:
    """``http_get`` and ``http_post`` tools that may reach only ``allowed_hosts``.

    With no hosts every request is refused: network access is something you
    grant, host by host: ``"api.example.com"``, ``"127.0.0.1:8000"`` to pin a
    port, ``"::1"`` or ``"[::1]"`` for an IPv6 address and ``"[::1]:8000"`` for
    one with a port. Redirects are not followed, so an allowed host cannot
    bounce a request elsewhere.

    The body is streamed and reading stops once the cut is reached (so a huge
    body never lands in memory), and ``timeout_s`` bounds the whole request,
    from connecting to the last byte read, not only each wait for bytes.

    Args:
        allowed_hosts: host names or addresses (optionally with a port) requests may go to.
        timeout_s: the longest a request may take, body included.
        max_response_chars: longer bodies are cut (marked ``[... response truncated]``).
        transport: an httpx transport (for tests or proxies).

    Raises:
        ConfigError: an allow-list entry is not a host, ``host:port``, an IPv6
            address or ``[IPv6]:port`` (or could be read two ways, as ``::1:8080``).
    """
    allowed = {_parse_entry(entry) for entry in allowed_hosts}
    # A UTF-8 character is at most 4 bytes: this many bytes always hold the cut.
    max_bytes = 4 * max_response_chars

    def check(url: str) -> httpx.URL:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as e:
            raise ToolError(f"{url!r} is not a valid URL") from e
        if parsed.scheme not in ("http", "https"):
            raise ToolPermissionError(f"URL scheme {parsed.scheme!r} refused; use http or https")
        host = _normal_host(parsed.host or "")
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
        if (host, None) not in allowed and (host, port) not in allowed:
            shown = ", ".join(sorted(_show(h, p) for h, p in allowed)) or "none"
            asked = _show(host, parsed.port)
            raise ToolPermissionError(f"host {asked!r} is not allowed (allowed: {shown})")
        return parsed

    async def fetch(method: str, url: str, target: httpx.URL, body: Any) -> str:
        try:
            async with (
                httpx.AsyncClient(
                    timeout=timeout_s, follow_redirects=False, transport=transport
                ) as client,
                # Identity: a compressed body could inflate far past the cap in one chunk.
                client.stream(
                    method, target, json=body, headers={"Accept-Encoding": "identity"}
                ) as response,
            ):
                # Past the cap, leaving the block closes the connection mid-body.
                data, _ = await read_capped(response, max_bytes)
                encoding = response.encoding or "utf-8"
                status = response.status_code
        except httpx.HTTPError as e:
            raise ToolError(f"{method} {url} failed: {type(e).__name__}: {e}") from e
        try:
            decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        except LookupError:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # Not final: a character split by the byte cap is dropped, not garbled.
        text = decoder.decode(data, final=len(data) <= max_bytes)
        if len(data) > max_bytes or len(text) > max_response_chars:
            text = text[:max_response_chars] + _TRUNCATED
        return f"HTTP {status}\n{text}"

    async def send(method: str, url: str, body: Any = None) -> str:
        target = check(url)
        try:
            async with asyncio.timeout(timeout_s):
                return await fetch(method, url, target, body)
        except TimeoutError as e:
            raise ToolTimeout(f"http_{method.lower()}", timeout_s) from e

    @tool(tags=("http",), sources=("web", "tool:http_get"))
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


def _normal_host(host: str) -> str:
    """Lower-case names; IP addresses in their one canonical spelling."""
    host = host.lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _show(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown


def _parse_entry(entry: str) -> tuple[str, int | None]:
    """``(host, port)`` for an allow-list entry (port None: any port)."""
    text = entry.strip().lower() if isinstance(entry, str) else ""
    if not text or any(c in text for c in "/@?#\\ \t") or text.count("[") > 1:
        raise ConfigError(
            f"allowed host {entry!r} is not a host name, host:port, IPv6 address or [IPv6]:port"
        )
    if text.startswith("["):
        address, close, rest = text[1:].partition("]")
        if not close:
            raise ConfigError(f"allowed host {entry!r}: '[' without ']'")
        if rest and not rest.startswith(":"):
            raise ConfigError(f"allowed host {entry!r}: expected ':PORT' after ']'")
        host = _ipv6(address, entry)
        return host, _port(rest[1:], entry) if rest else None
    if text.count(":") > 1:
        host = _ipv6(text, entry)
        head, _, tail = text.rpartition(":")
        if tail.isascii() and tail.isdigit() and _is_ipv6(head):
            # '::1:8080' is an address, but it reads as '::1' port 8080 just as well.
            raise ConfigError(
                f"allowed host {entry!r} is ambiguous: write '[{head}]:{tail}' for a port, "
                f"or '[{text}]' for the address"
            )
        return host, None
    name, colon, port = text.partition(":")
    if not name or "[" in text or "]" in text:
        raise ConfigError(f"allowed host {entry!r} is not a host name or host:port")
    return _normal_host(name), _port(port, entry) if colon else None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _ipv6(text: str, entry: str) -> str:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError as e:
        raise ConfigError(f"allowed host {entry!r}: {text!r} is not an IPv6 address") from e


def _port(text: str, entry: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ConfigError(f"allowed host {entry!r}: {text!r} is not a port (1-65535)")
    return int(text)
