"""What a memory is: the record, its provenance, and a recalled (scored) record."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MemoryKind",
    "MemoryRecord",
    "Provenance",
    "RecalledMemory",
    "SourceKind",
    "Trust",
]

MetadataValue = str | int | float | bool


class MemoryKind(StrEnum):
    """What a record remembers."""

    EPISODIC = "episodic"
    """What an agent did: task, steps, outcome."""
    SEMANTIC = "semantic"
    """Facts and insights."""
    LESSON = "lesson"
    """A distilled failure, consulted before acting (written by MemoryGuard)."""


class SourceKind(StrEnum):
    """Where the content of a record came from."""

    USER = "user"
    AGENT = "agent"
    SYSTEM = "system"
    TOOL = "tool"
    WEB = "web"
    EXTERNAL = "external"
    """Another tenant or an outside system."""


class Trust(StrEnum):
    """How far a record is believed; ordered from most to least trusted."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    QUARANTINED = "quarantined"

    @property
    def rank(self) -> int:
        """0 for ``high`` up to 3 for ``quarantined``."""
        return list(Trust).index(self)


class Provenance(BaseModel):
    """Who wrote a record, when, from which run, and how far it is trusted.

    Attributes:
        source: the kind of origin of the content (user, agent, tool, web, ...).
        writer: name of the agent, tool or user that wrote it.
        run_id: the run that produced it, when there is one.
        created_at: Unix time of the write.
        trust: trust level assigned by the write policy.
    """

    model_config = ConfigDict(frozen=True)

    source: SourceKind = SourceKind.AGENT
    writer: str = "agent"
    run_id: str | None = None
    created_at: float = Field(default_factory=time.time)
    trust: Trust = Trust.MEDIUM


class MemoryRecord(BaseModel):
    """One stored memory.

    Attributes:
        id: unique id (generated when not given).
        kind: episodic, semantic or lesson.
        text: the content that is embedded and recalled.
        importance: 0..1, how much this record should weigh in retrieval.
        provenance: who wrote it, when, and how trusted it is.
        tags: free labels, filterable.
        metadata: extra scalar fields, filterable by equality.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: MemoryKind = MemoryKind.SEMANTIC
    text: str = Field(min_length=1)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    provenance: Provenance = Field(default_factory=Provenance)
    tags: tuple[str, ...] = ()
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)

    def to_chroma(self) -> dict[str, MetadataValue]:
        """Flatten into chroma metadata (scalars only; user fields get an ``m_`` prefix)."""
        flat: dict[str, MetadataValue] = {
            "kind": self.kind.value,
            "importance": self.importance,
            "source": self.provenance.source.value,
            "writer": self.provenance.writer,
            "run_id": self.provenance.run_id or "",
            "created_at": self.provenance.created_at,
            "trust": self.provenance.trust.value,
            "trust_rank": self.provenance.trust.rank,
            # Delimited so that a `$contains`-free equality filter is never needed.
            "tags": "|" + "|".join(self.tags) + "|" if self.tags else "",
        }
        for key, value in self.metadata.items():
            flat[f"m_{key}"] = value
        return flat

    @classmethod
    def from_chroma(cls, id: str, text: str, meta: dict[str, Any]) -> MemoryRecord:
        """Rebuild a record from what :meth:`to_chroma` stored."""
        tags = tuple(t for t in str(meta.get("tags", "")).split("|") if t)
        return cls(
            id=id,
            kind=MemoryKind(meta["kind"]),
            text=text,
            importance=float(meta["importance"]),
            provenance=Provenance(
                source=SourceKind(meta["source"]),
                writer=str(meta["writer"]),
                run_id=str(meta["run_id"]) or None,
                created_at=float(meta["created_at"]),
                trust=Trust(meta["trust"]),
            ),
            tags=tags,
            metadata={k[2:]: v for k, v in meta.items() if k.startswith("m_")},
        )


@dataclass(frozen=True)
class RecalledMemory:
    """A record returned by recall, with the parts of its score.

    Attributes:
        record: the stored record.
        similarity: cosine similarity to the query (-1..1).
        recency: 1 for a record written now, halving every half-life.
        score: the weighted score recall ranked by.
    """

    record: MemoryRecord
    similarity: float
    recency: float
    score: float

    @property
    def text(self) -> str:
        """The record's text."""
        return self.record.text
