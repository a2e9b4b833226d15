"""When and how long to wait before trying an HTTP request again."""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from plait.errors import BackendHTTPError

from ._quote import quote

__all__ = ["RetryPolicy", "error_from_response", "retry_after_seconds", "should_retry_status"]

_RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter.

    Attempt ``n`` (from 0) waits a random time in ``[0, min(max_delay,
    base_delay * 2**n)]``; full jitter keeps many clients that failed together
    from retrying together. A ``Retry-After`` header replaces that wait, capped
    at ``max_retry_after``.

    Attributes:
        max_attempts: tries in all, the first one included (1: never retry).
        base_delay: seconds the backoff starts from.
        max_delay: ceiling of one backoff wait.
        max_retry_after: ceiling of a server-requested wait.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 0)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2**attempt))


def should_retry_status(status: int) -> bool:
    """429, 408 and 5xx are worth another try; other 4xx are the caller's mistake."""
    return status in _RETRY_STATUSES or status >= 500


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header: seconds, or an HTTP date (``None`` if absent/bad)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(
    response: httpx.Response, body: bytes, *, secrets: Iterable[str] = (), truncated: bool = False
) -> BackendHTTPError:
    """A :class:`BackendHTTPError` carrying the status and the server's own message.

    The message is quoted as :func:`~._quote.quote` does: credentials blanked,
    at most a few hundred characters. ``truncated`` says ``body`` is only the
    start of a longer body (the read stopped at the byte cap).
    """
    message = ""
    data = None
    if not truncated:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            message = str(error.get("message") or error)
        elif error is not None:
            message = str(error)
    if not message:
        message = body.decode("utf-8", errors="replace").strip() or response.reason_phrase
    shown = quote(message, secrets)
    if truncated:
        shown += " (body cut at the byte cap)"
    return BackendHTTPError(response.status_code, shown, url=str(response.request.url))
