"""Quoting server payloads in error messages: short, and with credentials blanked out.

A server may answer with megabytes, or echo the request back, ``Authorization``
header included. Every piece of a payload that reaches an error message goes
through :func:`quote`: secrets are replaced by ``***`` (the backend's own key and
header values by value, and anything shaped like a bearer token, an
``Authorization`` value or an API key), then the text is cut to its first
:data:`MAX_QUOTE` characters with the full size said.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_QUOTE", "quote", "redact"]

MAX_QUOTE = 500
"""Characters of a payload an error message shows."""

# Redaction looks a little past the cut, so a secret that straddles it is blanked whole.
_WINDOW = MAX_QUOTE + 8192
_MIN_SECRET = 6

_PATTERNS = (
    # "Authorization: Bearer x", "authorization": "x", Proxy-Authorization=x ...
    re.compile(
        r"""(?ix)((?:proxy-)?authorization["']?\s*[:=]\s*["']?)"""
        r"""((?:bearer|basic|token)\s+)?([^"'\s,;}\]]+)"""
    ),
    # A bare "Bearer x" / "Basic x" anywhere else.
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)()([A-Za-z0-9._~+/=-]{8,})"),
    # API-key fields: "api_key": "x", x-api-key: x, "api-key"=x.
    re.compile(r"""(?ix)((?:x-)?api[-_]?key["']?\s*[:=]\s*["']?)()([^"'\s,;}\]]+)"""),
    # Key-shaped tokens: OpenAI-style sk-..., and similar prefixes.
    re.compile(r"()()\b((?:sk|pk|rk)-[A-Za-z0-9_-]{16,})"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret value and credential-shaped token replaced by ``***``."""
    for secret in sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + (m.group(2) or "") + "***", text)
    return text


def quote(payload: str | bytes, secrets: Iterable[str] = ()) -> str:
    """A payload as an error message may show it: redacted, at most :data:`MAX_QUOTE` chars.

    A longer payload is cut and marked ``... (N bytes)`` (N: its whole size).
    """
    if isinstance(payload, bytes):
        size = len(payload)
        text = payload[: _WINDOW * 4].decode("utf-8", errors="replace")
    else:
        size = len(payload.encode("utf-8", errors="replace"))
        text = payload
    shown = redact(text[:_WINDOW], secrets)
    if len(shown) > MAX_QUOTE or len(text) > _WINDOW:
        return f"{shown[:MAX_QUOTE]}... ({size} bytes)"
    return shown
