"""The repetition guard inside JSON strings: a value that loops stops there.

A small model writing a string argument sometimes falls into a loop ("Paris,
Paris, Paris, ...") that only the token limit ends: the reply is cut off and
no call is made. The constrained decoder watches the tokens of the string
being written (:class:`~._guidance.Constraint`); once they end in one block of
tokens repeated :data:`MIN_COPIES` times or more, spanning :data:`MIN_SPAN`
tokens or more, only the string's closing quote is allowed next, and the reply
keeps the string up to the end of the block's first copy (:func:`kept_text`).

The thresholds leave legitimate repeats alone: "New York, New York", "bye
bye", "ha ha ha" and "no, no, no" are too short, and a value made of a few
copies of a long block ("4242 4242 4242 4242") ends before its fourth copy is
followed by a fifth (the false cuts measured on the benchmarks' expected
values are in ``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["MIN_COPIES", "MIN_SPAN", "keep_cut", "kept_text", "loop_end"]

MIN_COPIES = 4
"""Copies of one block that make a loop."""

MIN_SPAN = 12
"""Tokens the copies must span together: shorter repeats are left alone."""

_Item = TypeVar("_Item")


def loop_end(
    items: Sequence[_Item], min_copies: int = MIN_COPIES, min_span: int = MIN_SPAN
) -> int | None:
    """Where a loop at the end of ``items`` should be cut, or ``None`` for no loop.

    The end loops when, for some block length ``p`` (the shortest that
    does), the last ``max(min_span, p * min_copies)`` items repeat with period
    ``p``. The periodic stretch is followed back as far as it goes; the cut is
    one period after its start, so one copy of the block stays.
    """
    n = len(items)
    for p in range(1, n // min_copies + 1):
        need = max(min_span, p * min_copies)
        if need > n:
            break
        if all(items[i] == items[i - p] for i in range(n - need + p, n)):
            start = n - need
            while start > 0 and items[start - 1] == items[start - 1 + p]:
                start -= 1
            return start + p
    return None


_SEPARATORS = b" ,;"
_MAX_BLOCK = 64  # bytes: longer blocks are not looked for when cutting


def kept_text(content: bytes) -> bytes:
    """What a looping string keeps: up to its block's first copy, no trailing separators.

    The cut is found on the bytes, not the tokens (a loop's first copy is often
    spelled with other tokens than the rest: "Paris" then " Paris"), at the
    block whose repeats reach back furthest ("7000000 7000000 7000000" repeats
    "0" too, but "7000000 " reaches back to the start).
    """
    n = len(content)
    best: tuple[int, int] | None = None  # (where the repeats start, block length)
    for p in range(1, min(_MAX_BLOCK, n // 2) + 1):
        start = n - p
        while start > 0 and content[start - 1] == content[start - 1 + p]:
            start -= 1
        if n - start >= 2 * p and (best is None or start < best[0]):
            best = (start, p)
    kept = content if best is None else content[: best[0] + best[1]]
    return kept.rstrip(_SEPARATORS) or kept


def keep_cut(text: str, loops: Sequence[tuple[bytes, bytes]]) -> str:
    """``text`` with each looping string the guard ended shortened to what it keeps."""
    for written, kept in loops:
        looped = written.decode("utf-8", errors="replace")
        at = text.rfind(looped)
        if at >= 0:
            text = text[:at] + kept.decode("utf-8", errors="ignore") + text[at + len(looped) :]
    return text
