"""Redacting secrets by value: the one place that decides what is hidden and how.

A workflow file's ``${NAME}`` references are replaced by environment values
(API keys, tokens, URLs with credentials). Everything plait writes or prints
about a run (error messages, stderr, ``run.json``, ``trace.jsonl``, reports,
``plait runs show``) passes through the run's :class:`Redactor`, which replaces
each such value by ``***``.

Only values that came from environment references are secrets, and only when
they are at least :data:`MIN_SECRET_LENGTH` characters long: a short value
(``ONE=1``, ``MODE=fast``) is not a credential, and hiding it would turn every
``1`` of a report into ``***``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "MIN_SECRET_LENGTH", "NO_SECRETS", "Redactor"]

MASK = "***"
"""What a secret is replaced by."""

MIN_SECRET_LENGTH = 8
"""Shorter environment values are not treated as secrets."""


class Redactor:
    """Replaces known secret values by :data:`MASK` in text and JSON-like data.

    Args:
        secrets: candidate values; those shorter than ``min_length`` are ignored.
        min_length: the shortest value treated as a secret.
    """

    def __init__(self, secrets: Iterable[str] = (), *, min_length: int = MIN_SECRET_LENGTH) -> None:
        kept = {s for s in secrets if isinstance(s, str) and len(s) >= min_length}
        # Longest first, so a secret containing another is replaced whole.
        self.secrets: tuple[str, ...] = tuple(sorted(kept, key=lambda s: (-len(s), s)))
        self.min_length = min_length

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __repr__(self) -> str:  # never the values themselves
        return f"Redactor({len(self.secrets)} secrets)"

    def __or__(self, other: Redactor) -> Redactor:
        return Redactor(
            (*self.secrets, *other.secrets), min_length=min(self.min_length, other.min_length)
        )

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by :data:`MASK`."""
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (text or JSON-like data) holds a secret."""
        if isinstance(value, str):
            return any(secret in value for secret in self.secrets)
        if isinstance(value, Mapping):
            return any(self.contains(k) or self.contains(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(self.contains(v) for v in value)
        return False

    def data(self, value: Any) -> Any:
        """JSON-like ``value`` with secrets replaced in every string (keys included).

        Mappings become dicts and lists/tuples lists; other values are kept.
        """
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                (self.text(k) if isinstance(k, str) else k): self.data(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def error(self, error: BaseException) -> BaseException:
        """Redact ``error``'s message in place (its ``args``) and return it.

        Used where an exception leaves plait's hands (raised to the caller,
        printed by the CLI), so no message carries a secret further. Chained
        causes are redacted too.
        """
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen and self.secrets:
            seen.add(id(current))
            if any(isinstance(a, str) and self.text(a) != a for a in current.args):
                current.args = tuple(
                    self.text(a) if isinstance(a, str) else a for a in current.args
                )
            current = current.__cause__ or current.__context__
        return error


NO_SECRETS = Redactor()
