"""The HTTP side of retrying: the client's default policy, ``Retry-After``, error answers.

Which failures are retried and how long to wait is :mod:`plait.retry`'s decision.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterable
from typing import Any

import httpx

from plait.errors import BackendHTTPError
from plait.retry import RetryPolicy

from ._quote import quote

__all__ = ["HTTP_RETRY", "error_from_response", "legacy_retry_policy", "retry_after_seconds"]


HTTP_RETRY = RetryPolicy(initial_backoff_s=0.5, max_backoff_s=8.0, jitter=1.0)
"""The client's default: three tries, waits from 0.5 s doubling to at most 8 s, full
jitter (many clients that failed together do not retry together)."""


def legacy_retry_policy(
    max_attempts: int = 3,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    max_retry_after: float = 60.0,
    **fields: Any,
) -> RetryPolicy:
    """What ``plait.backends.RetryPolicy(...)`` was: the old field names, full jitter.

    The deprecated alias of :class:`plait.retry.RetryPolicy` for one release: it
    takes the old names (``base_delay``, ``max_delay``, ``max_retry_after``) and
    the new ones, and returns the one policy type.
    """
    fields.setdefault("jitter", 1.0)
    return RetryPolicy(
        max_attempts=max_attempts,
        initial_backoff_s=fields.pop("initial_backoff_s", base_delay),
        max_backoff_s=fields.pop("max_backoff_s", max_delay),
        max_retry_after_s=fields.pop("max_retry_after_s", max_retry_after),
        **fields,
    )


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
