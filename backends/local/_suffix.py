"""Model-free drafts for speculative decoding: continuations of earlier occurrences.

Agent outputs copy a lot: a joiner quotes tool results, a summary repeats its
document, a replan repeats most of the last plan. When the last few tokens of a
sequence occurred before (in its own prompt and output, or in an earlier output
on the same model), the tokens that followed them then are a cheap guess of what
comes next. The engine evaluates such a draft in one batch row and keeps the
longest prefix its sampler would have produced anyway (SuffixDecoding's idea,
with n-gram tables instead of suffix trees: lookups are dictionary hits).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

__all__ = ["Drafter", "OutputIndex"]

_ORDERS = (6, 4, 3)  # match lengths tried, longest first


class _Table:
    """n-gram -> where its most recent occurrence ends, over one growing token list."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens = tokens
        self._ends: dict[tuple[int, ...], int] = {}
        self._indexed = 0  # n-grams ending before this position are in the table

    def catch_up(self, upto: int) -> None:
        """Index every n-gram that ends before position ``upto``."""
        tokens = self.tokens
        for end in range(self._indexed + 1, upto + 1):
            for n in _ORDERS:
                if end >= n:
                    self._ends[tuple(tokens[end - n : end])] = end
        self._indexed = max(self._indexed, upto)

    def follow(self, tail: tuple[int, ...], k: int) -> list[int]:
        end = self._ends.get(tail)
        if end is None:
            return []
        return self.tokens[end : end + k]


class OutputIndex:
    """Recent outputs of one model's engine, for drafts across requests and agents.

    Args:
        max_tokens: output tokens kept; the oldest outputs go first.
    """

    def __init__(self, max_tokens: int = 32768) -> None:
        self._max = max_tokens
        self._outputs: deque[_Table] = deque()
        self._size = 0

    def add(self, tokens: Sequence[int]) -> None:
        if len(tokens) < min(_ORDERS) + 1:
            return
        table = _Table(list(tokens))
        table.catch_up(len(tokens))
        self._outputs.append(table)
        self._size += len(tokens)
        while self._size > self._max and self._outputs:
            self._size -= len(self._outputs.popleft().tokens)

    def follow(self, tail: tuple[int, ...], k: int) -> list[int]:
        for table in reversed(self._outputs):  # the most recent first
            draft = table.follow(tail, k)
            if draft:
                return draft
        return []


class Drafter:
    """One job's drafts, from its own tokens first and then the engine's earlier outputs.

    Acceptance is tracked. The draft length adapts: it starts at 4, doubles (up
    to ``k``) after a wholly accepted draft and falls to one more than the
    accepted part otherwise, since on a CPU every drafted token costs a share of
    a decode step even when rejected. After drafts that were wholly rejected,
    drafting pauses for a number of steps that doubles with each miss in a row
    (at most 64), so a job whose text does not repeat pays almost nothing.

    Args:
        tokens: the job's tokens so far (prompt, then generated); the drafter reads
            the list as it grows.
        outputs: the engine's earlier outputs (``None``: the job's own tokens only).
        k: longest draft.
    """

    def __init__(self, tokens: list[int], outputs: OutputIndex | None, k: int) -> None:
        self._own = _Table(tokens)
        self._outputs = outputs
        self.k = k
        self._length = min(4, k)
        self.drafted = 0
        self.accepted = 0
        self._misses = 0
        self._pause = 0

    def propose(self, limit: int) -> list[int]:
        """A draft of at most ``min(k, limit)`` tokens to follow the current tokens."""
        k = min(self._length, limit)
        if k <= 0:
            return []
        if self._pause > 0:
            self._pause -= 1
            return []
        tokens = self._own.tokens
        # The n-grams that end at the very end are left out: they would find themselves.
        self._own.catch_up(len(tokens) - 1)
        for n in _ORDERS:
            if len(tokens) < n:
                continue
            tail = tuple(tokens[-n:])
            draft = self._own.follow(tail, k)
            if not draft and self._outputs is not None:
                draft = self._outputs.follow(tail, k)
            if draft:
                return draft
        return []

    def verified(self, drafted: int, accepted: int) -> None:
        """Record how a draft fared."""
        self.drafted += drafted
        self.accepted += accepted
        if accepted == 0:
            self._misses += 1
            self._pause = min(64, 2**self._misses)
        else:
            self._misses = 0
        if accepted == drafted:
            self._length = min(self.k, self._length * 2)
        else:
            self._length = max(2, min(self.k, accepted + 1))
