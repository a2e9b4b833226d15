"""Bounded HTTP reads, shared by the HTTP backend and the HTTP tools.

A response body is read as a stream and reading stops once a byte cap is
passed, so a huge (or endless) body never lands in memory. Time limits are the
caller's: both users wrap a whole request, from connecting to the last byte, in
one ``asyncio.timeout``, because httpx's own timeouts bound each wait for bytes
and a server that drips one byte at a time never trips them.
"""

from __future__ import annotations

import httpx

__all__ = ["read_capped"]


async def read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """The body of a streamed ``response``, read until more than ``max_bytes`` arrived.

    Returns:
        ``(data, over)``: ``over`` says the body is longer than ``max_bytes``;
        ``data`` then holds the first bytes read (at least ``max_bytes + 1``, one
        chunk more at most) and the rest was never read.
    """
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > max_bytes:
            return bytes(data), True
    return bytes(data), False
