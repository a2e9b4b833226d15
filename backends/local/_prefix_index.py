"""Which token prefixes live in which KV-cache sequence; LRU eviction and pins.

Pure bookkeeping, no llama.cpp: the engine asks it where a prompt's longest
cached prefix lives, which sequence id a new request may use (evicting the
least recently used idle, unpinned sequence when all are taken), and which
prefixes are pinned.

The index is a flat prefix index over the resident sequences rather than a
radix tree: there are at most ``n_seq_max`` of them (tens), so a longest-match
scan over each sequence's token list costs microseconds next to one decode
step, and it maps one-to-one onto llama.cpp's per-sequence KV bookkeeping.
Sharing between sequences is llama.cpp's: a forked sequence points at the same
KV cells as its source (``llama_memory_seq_cp`` on a unified cache).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Entry", "PrefixIndex", "common_prefix"]


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case for a shared system prompt: one C-level compare
        return n
    lo, hi = 0, n  # invariant: a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass
class Entry:
    """One KV-cache sequence and the tokens it holds at positions ``0..len-1``.

    Attributes:
        seq_id: the llama.cpp sequence id.
        tokens: tokens whose keys and values are resident in this sequence.
        n_prompt: how many of them were the prompt of the request that made it
            (the rest are that request's generated tokens).
        last_used: monotonic time of the last use, for LRU eviction.
        users: running requests that own this sequence or wait to fork from it;
            a sequence with users is never evicted.
        pins: pin ids keeping this sequence resident, with their expiry times
            (``math.inf``: until released).
    """

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    n_prompt: int = 0
    last_used: float = 0.0
    users: int = 0
    pins: dict[int, float] = field(default_factory=dict)

    def pinned(self, now: float) -> bool:
        return any(expiry > now for expiry in self.pins.values())


class PrefixIndex:
    """Bookkeeping of ``n_seq`` KV-cache sequences.

    Args:
        n_seq: number of sequence ids the llama.cpp context was created with.
    """

    def __init__(self, n_seq: int) -> None:
        self._free = list(range(n_seq - 1, -1, -1))  # pop() hands out 0 first
        self._entries: dict[int, Entry] = {}
        self._next_pin = 1

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def get(self, seq_id: int) -> Entry | None:
        return self._entries.get(seq_id)

    def longest(self, tokens: list[int]) -> tuple[Entry | None, int]:
        """The resident sequence sharing the longest prefix with ``tokens``."""
        best: Entry | None = None
        best_n = 0
        for entry in self._entries.values():
            if entry.tokens and entry.tokens[0] == tokens[0]:
                n = common_prefix(entry.tokens, tokens)
                if n > best_n:
                    best, best_n = entry, n
        return best, best_n

    def allocate(
        self, now: float, *, keep: Entry | None = None
    ) -> tuple[Entry | None, Entry | None]:
        """Take a sequence for a new request: a free id, else the LRU idle one.

        Args:
            now: monotonic time.
            keep: a sequence that should be evicted last (the fork source).

        Returns:
            ``(entry, evicted)``: the new, empty entry (``None`` when every
            sequence is busy or pinned) and the entry whose tokens were evicted
            to make room, if any (the caller removes its KV cells). When the
            evicted entry is ``keep`` itself, the new entry has the same
            ``seq_id`` and the caller may reuse its cells in place.
        """
        if self._free:
            entry = Entry(seq_id=self._free.pop(), last_used=now)
            self._entries[entry.seq_id] = entry
            return entry, None
        victim = self.victim(now, keep=keep)
        if victim is None:
            return None, None
        del self._entries[victim.seq_id]
        entry = Entry(seq_id=victim.seq_id, last_used=now)
        self._entries[entry.seq_id] = entry
        return entry, victim

    def victim(self, now: float, *, keep: Entry | None = None) -> Entry | None:
        """The least recently used sequence nobody uses or pins (``keep`` last)."""
        idle = [e for e in self._entries.values() if e.users == 0 and not e.pinned(now)]
        if not idle:
            return None
        return min(idle, key=lambda e: (e is keep, e.last_used))

    def evict(self, entry: Entry) -> None:
        """Forget a sequence whose KV cells the caller has removed."""
        del self._entries[entry.seq_id]
        self._free.append(entry.seq_id)

    def clear(self) -> list[Entry]:
        """Forget every idle, unpinned sequence; return them (their cells must go)."""
        gone = [e for e in self._entries.values() if e.users == 0 and not e.pins]
        for entry in gone:
            self.evict(entry)
        return gone

    def pin(self, entry: Entry, ttl_s: float | None, now: float) -> int:
        """Keep ``entry`` resident until :meth:`unpin` or ``ttl_s`` seconds pass."""
        pin_id = self._next_pin
        self._next_pin += 1
        entry.pins[pin_id] = math.inf if ttl_s is None else now + ttl_s
        return pin_id

    def unpin(self, pin_id: int) -> bool:
        """Release a pin; ``False`` when it was unknown or already released."""
        for entry in self._entries.values():
            if entry.pins.pop(pin_id, None) is not None:
                return True
        return False

    def expire(self, now: float) -> None:
        """Drop pins whose time to live has passed."""
        for entry in self._entries.values():
            for pin_id in [p for p, expiry in entry.pins.items() if expiry <= now]:
                del entry.pins[pin_id]
