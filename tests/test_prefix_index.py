"""The local engine's prefix index: longest match, LRU eviction, pins and TTL (no model)."""

import math

from plait.backends.local._prefix_index import PrefixIndex, common_prefix


def test_common_prefix_lengths():
    assert common_prefix([1, 2, 3], [1, 2, 3]) == 3
    assert common_prefix([1, 2, 3, 4], [1, 2, 9, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([5], [1]) == 0
    assert common_prefix([], [1]) == 0
    long = list(range(1000))
    assert common_prefix(long, long[:700] + [-1] + long[701:]) == 700


def test_longest_match_picks_the_sequence_sharing_most_tokens():
    index = PrefixIndex(4)
    a, _ = index.allocate(0.0)
    b, _ = index.allocate(0.0)
    assert a is not None and b is not None and a.seq_id != b.seq_id
    a.tokens = [1, 2, 3, 4]
    b.tokens = [1, 2, 3, 9, 9]
    entry, n = index.longest([1, 2, 3, 9, 7])
    assert entry is b and n == 4
    assert index.longest([8, 1]) == (None, 0)


def test_full_index_evicts_least_recently_used_idle_sequence():
    index = PrefixIndex(2)
    a, _ = index.allocate(1.0)
    b, _ = index.allocate(2.0)
    assert a and b
    a.tokens, b.tokens = [1], [2]
    a.last_used, b.last_used = 5.0, 3.0
    c, evicted = index.allocate(6.0)
    assert evicted is b and c is not None and c.seq_id == b.seq_id
    assert index.get(c.seq_id) is c and len(index) == 2


def test_busy_and_pinned_sequences_are_never_evicted():
    index = PrefixIndex(2)
    a, _ = index.allocate(0.0)
    b, _ = index.allocate(0.0)
    assert a and b
    a.users = 1
    index.pin(b, None, now=0.0)
    assert index.allocate(1.0) == (None, None)
    a.users = 0
    entry, evicted = index.allocate(1.0)
    assert evicted is a and entry is not None


def test_pin_release_and_ttl():
    index = PrefixIndex(1)
    a, _ = index.allocate(0.0)
    assert a
    forever = index.pin(a, None, now=0.0)
    brief = index.pin(a, 5.0, now=0.0)
    assert a.pins[forever] == math.inf and a.pins[brief] == 5.0
    assert index.unpin(forever) and not index.unpin(forever)
    assert a.pinned(4.0) and index.victim(4.0) is None
    index.expire(6.0)
    assert not a.pins and index.victim(6.0) is a


def test_fork_source_is_evicted_last():
    index = PrefixIndex(2)
    a, _ = index.allocate(0.0)
    b, _ = index.allocate(0.0)
    assert a and b
    a.last_used, b.last_used = 1.0, 2.0
    entry, evicted = index.allocate(3.0, keep=a)
    assert evicted is b


def test_clear_keeps_busy_and_pinned_sequences():
    index = PrefixIndex(3)
    entries = [index.allocate(0.0)[0] for _ in range(3)]
    assert all(entries)
    entries[0].users = 1  # type: ignore[union-attr]
    index.pin(entries[1], None, now=0.0)  # type: ignore[arg-type]
    assert index.clear() == [entries[2]]
    assert len(index) == 2
