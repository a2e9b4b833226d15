"""Memory: remember and recall records in one namespace, optionally guarded."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plait.errors import ConfigError

from ._embedders import Embedder, default_embedder
from ._records import (
    MemoryKind,
    MemoryRecord,
    MetadataValue,
    Provenance,
    RecalledMemory,
    SourceKind,
    Trust,
)
from ._scoring import ScoreWeights
from ._store import ChromaStore

if TYPE_CHECKING:
    from ._guard import MemoryGuard, Rejection

__all__ = ["Memory", "RecallResult"]

# Trust given to a write when neither the caller nor a guard says otherwise.
_DEFAULT_TRUST = {
    SourceKind.USER: Trust.HIGH,
    SourceKind.SYSTEM: Trust.HIGH,
    SourceKind.AGENT: Trust.MEDIUM,
    SourceKind.TOOL: Trust.LOW,
    SourceKind.WEB: Trust.LOW,
    SourceKind.EXTERNAL: Trust.LOW,
}


@dataclass(frozen=True)
class RecallResult:
    """What one recall returned, and what the guard held back.

    Attributes:
        query: the query text.
        memories: kept records, best first.
        rejected: records the guard dropped, with reasons.
    """

    query: str
    memories: list[RecalledMemory]
    rejected: list[Rejection] = field(default_factory=list)

    def as_context(self) -> str:
        """The kept memories as a numbered block for a prompt ("" when none)."""
        return "\n".join(f"[{i}] {m.text}" for i, m in enumerate(self.memories, 1))


class Memory:
    """Records in one namespace (one chroma collection), recalled by a weighted score.

    Args:
        namespace: collection name, e.g. a workflow name.
        store: where records live (default: embedded store under ``.plait/memory``).
        embedder: turns text into vectors (default: offline multilingual-e5-small).
        weights: how recall ranks records.
        guard: screens writes and recalls (see :class:`MemoryGuard`).
        clock: time source, for tests of recency.
    """

    def __init__(
        self,
        namespace: str = "default",
        *,
        store: ChromaStore | None = None,
        embedder: Embedder | None = None,
        weights: ScoreWeights | None = None,
        guard: MemoryGuard | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self.store = store or ChromaStore()
        self.embedder = embedder or default_embedder()
        self.weights = weights or ScoreWeights()
        self.guard = guard
        if guard is not None:
            guard.attach(self.store)
        self.clock = clock

    async def remember(
        self,
        text: str,
        *,
        kind: MemoryKind | str = MemoryKind.SEMANTIC,
        importance: float = 0.5,
        source: SourceKind | str = SourceKind.AGENT,
        writer: str = "agent",
        run_id: str | None = None,
        trust: Trust | str | None = None,
        tags: Iterable[str] = (),
        metadata: Mapping[str, MetadataValue] | None = None,
        derived_from: Sequence[str] = (),
    ) -> MemoryRecord:
        """Store one record and return it (with the trust the write policy gave it).

        ``derived_from`` names the records (in this namespace) the content was based
        on, for example the memories recalled for the run an episode describes; the
        new record is trusted no more than the least trusted of them, so a poisoned
        memory cannot launder itself into a trusted precedent.

        Raises:
            ConfigError: empty text, importance outside 0..1, unknown kind/source/trust.
            MemoryStoreError: the store cannot be written.
        """
        try:
            source = SourceKind(source)
            provenance = Provenance(
                source=source,
                writer=writer,
                run_id=run_id,
                created_at=self.clock(),
                trust=Trust(trust) if trust is not None else _DEFAULT_TRUST[source],
            )
            record = MemoryRecord(
                kind=MemoryKind(kind),
                text=text,
                importance=importance,
                provenance=provenance,
                tags=tuple(tags),
                metadata=dict(metadata or {}),
            )
        except ValueError as e:  # pydantic's ValidationError and bad enum values
            raise ConfigError(f"bad memory record: {e}", location=f"memory {self.namespace}") from e
        if derived_from:
            parents = await self.get(derived_from)
            lowest = max(
                [record.provenance.trust, *(p.provenance.trust for p in parents)],
                key=lambda t: t.rank,
            )
            record = record.model_copy(
                update={
                    "provenance": record.provenance.model_copy(update={"trust": lowest}),
                    "metadata": {**record.metadata, "derived_from": ",".join(derived_from)},
                }
            )
        if self.guard is not None:
            record = self.guard.assess_write(record)
        await self.add([record])
        return record

    async def add(self, records: Sequence[MemoryRecord]) -> None:
        """Store prepared records as they are (no write policy applied)."""
        vectors = await self.embedder.embed_documents([r.text for r in records])
        await self.store.add(self.namespace, records, vectors)

    async def search(
        self,
        query: str,
        *,
        k: int = 5,
        kinds: Iterable[MemoryKind | str] | None = None,
        tags: Iterable[str] = (),
        filters: Mapping[str, MetadataValue] | None = None,
        include_quarantined: bool = False,
        trust_above: Trust | None = None,
    ) -> list[RecalledMemory]:
        """Unguarded retrieval: the ``k`` best-scored records that match the filters.

        ``trust_above`` keeps only records trusted more than that level.
        """
        if k < 1:
            raise ConfigError(f"recall k must be >= 1, got {k}")
        if trust_above is not None:
            where = _where(kinds, filters, False, trust_above.rank)
        else:
            where = _where(kinds, filters, include_quarantined, Trust.QUARANTINED.rank)
        (vector,) = await self.embedder.embed_queries([query])
        # Fetch more than k by similarity so recency/importance can reorder the top.
        hits = await self.store.query(self.namespace, vector, n=max(3 * k, 10), where=where)
        wanted = set(tags)
        now = self.clock()
        scored = [
            self.weights.score(record, sim, now)
            for record, sim in hits
            if wanted.issubset(record.tags)
        ]
        scored.sort(key=lambda m: m.score, reverse=True)
        return scored[:k]

    async def recall(
        self,
        query: str,
        *,
        k: int = 5,
        kinds: Iterable[MemoryKind | str] | None = None,
        tags: Iterable[str] = (),
        filters: Mapping[str, MetadataValue] | None = None,
    ) -> RecallResult:
        """Retrieve records for ``query``; with a guard, screen them first.

        Raises:
            MemoryGuardRejected: the guard is strict and rejected something.
            MemoryStoreError: the store cannot be read.
        """
        if self.guard is None:
            found = await self.search(query, k=k, kinds=kinds, tags=tags, filters=filters)
            return RecallResult(query=query, memories=found)
        # The guard needs a few more candidates than k to judge consensus among them.
        candidates = await self.search(
            query, k=k + self.guard.extra_candidates, kinds=kinds, tags=tags, filters=filters
        )
        # The vote needs the trusted records on the subject even when untrusted ones
        # crowd them out of the nearest neighbours.
        seen = {m.record.id for m in candidates}
        peers = await self.search(
            query,
            k=self.guard.trusted_peers,
            kinds=kinds,
            tags=tags,
            filters=filters,
            trust_above=Trust.LOW,
        )
        candidates += [m for m in peers if m.record.id not in seen]
        kept, rejected = await self.guard.screen(query, candidates)
        return RecallResult(query=query, memories=kept[:k], rejected=rejected)

    async def forget(self, ids: Sequence[str]) -> None:
        """Delete records by id."""
        await self.store.delete(self.namespace, ids)

    async def get(self, ids: Sequence[str]) -> list[MemoryRecord]:
        """Records by id."""
        return await self.store.get(self.namespace, ids=ids)

    async def count(self) -> int:
        """How many records this namespace holds."""
        return await self.store.count(self.namespace)


def _where(
    kinds: Iterable[MemoryKind | str] | None,
    filters: Mapping[str, MetadataValue] | None,
    include_quarantined: bool,
    trust_rank_below: int,
) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if kinds is not None:
        values = [MemoryKind(k).value for k in kinds]
        clauses.append({"kind": {"$in": values}})
    if not include_quarantined:
        clauses.append({"trust_rank": {"$lt": trust_rank_below}})
    for key, value in (filters or {}).items():
        clauses.append({f"m_{key}": value})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
