"""The chromadb store: an embedded ``PersistentClient`` or a Chroma server.

Vectors are computed by plait's embedder and handed to chroma, so collections are
created with no chroma embedding function (chroma's own default would download
a model at run time).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plait.errors import ConfigError, MemoryStoreError
from plait.settings import load_settings

from ._records import MemoryRecord

__all__ = ["ChromaStore", "Hit"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,48}[a-z0-9]$|^[a-z0-9]$")

Hit = tuple[MemoryRecord, float]
"""A record and its cosine similarity to the query."""


def _chroma() -> Any:
    import chromadb  # imported lazily: it takes a second and most plait runs need no memory

    return chromadb


def _store_errors() -> tuple[type[BaseException], ...]:
    return (_chroma().errors.ChromaError, sqlite3.Error, OSError, ValueError, RuntimeError)


class ChromaStore:
    """Collections of memory records in chromadb, one per namespace.

    Args:
        path: directory of the embedded store (default: ``<state_dir>/memory``).
        host: a Chroma server's host; when set, ``path`` is not used.
        port: the server's port.

    Nothing is opened until the first operation.
    """

    def __init__(
        self, path: str | Path | None = None, *, host: str | None = None, port: int = 8000
    ) -> None:
        if host is not None and path is not None:
            raise ConfigError("ChromaStore takes a path or a host, not both")
        self.host = host
        self.port = port
        self.path = None if host else Path(path or load_settings().state_dir / "memory")
        self._client: Any = None
        self._collections: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        """Where the store lives, for messages."""
        return f"http://{self.host}:{self.port}" if self.host else str(self.path)

    def _open(self) -> Any:
        if self._client is not None:
            return self._client
        chromadb = _chroma()
        settings = chromadb.Settings(anonymized_telemetry=False)
        try:
            if self.host:
                self._client = chromadb.HttpClient(
                    host=self.host, port=self.port, settings=settings
                )
            else:
                assert self.path is not None
                if self.path.exists() and not self.path.is_dir():
                    raise MemoryStoreError("is not a directory", location=self.location)
                self.path.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(self.path), settings=settings)
            self._client.heartbeat()
        except MemoryStoreError:
            raise
        except _store_errors() as e:
            self._client = None
            what = "cannot reach the Chroma server" if self.host else "cannot open the store"
            hint = "" if self.host else " (is the directory corrupt? move it away to start afresh)"
            raise MemoryStoreError(f"{what}: {e}{hint}", location=self.location) from e
        return self._client

    def _collection(self, namespace: str) -> Any:
        if not _NAME.match(namespace):
            raise ConfigError(
                f"memory namespace {namespace!r} must be 1-50 characters of lowercase letters, "
                "digits, '-' or '_', starting and ending with a letter or digit"
            )
        if namespace not in self._collections:
            client = self._open()
            self._collections[namespace] = client.get_or_create_collection(
                f"plait-{namespace}",
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
            )
        return self._collections[namespace]

    def _call(self, namespace: str, op: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return fn(self._collection(namespace), *args, **kwargs)
            except (MemoryStoreError, ConfigError):
                raise
            except _store_errors() as e:
                raise MemoryStoreError(
                    f"{op} in namespace {namespace!r} failed: {e}", location=self.location
                ) from e

    async def add(
        self, namespace: str, records: Sequence[MemoryRecord], vectors: Sequence[Sequence[float]]
    ) -> None:
        """Store (or overwrite, by id) records with their vectors."""
        if not records:
            return

        def op(col: Any) -> None:
            col.upsert(
                ids=[r.id for r in records],
                embeddings=[list(v) for v in vectors],
                documents=[r.text for r in records],
                metadatas=[r.to_chroma() for r in records],
            )

        await asyncio.to_thread(self._call, namespace, "add", op)

    async def query(
        self,
        namespace: str,
        vector: Sequence[float],
        *,
        n: int,
        where: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The ``n`` nearest records to ``vector`` that match ``where`` (chroma syntax)."""

        def op(col: Any) -> Any:
            count = col.count()
            if count == 0:
                return None
            return col.query(
                query_embeddings=[list(vector)],
                n_results=min(n, count),
                where=dict(where) if where else None,
                include=["documents", "metadatas", "distances"],
            )

        result = await asyncio.to_thread(self._call, namespace, "query", op)
        if result is None:
            return []
        rows = zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        )
        return [
            (MemoryRecord.from_chroma(i, d, dict(m)), 1.0 - float(dist)) for i, d, m, dist in rows
        ]

    async def get(
        self,
        namespace: str,
        *,
        ids: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> list[MemoryRecord]:
        """Records by id and/or filter, in no particular order."""

        def op(col: Any) -> Any:
            return col.get(
                ids=list(ids) if ids is not None else None,
                where=dict(where) if where else None,
                include=["documents", "metadatas"],
            )

        result = await asyncio.to_thread(self._call, namespace, "get", op)
        return [
            MemoryRecord.from_chroma(i, d, dict(m))
            for i, d, m in zip(result["ids"], result["documents"], result["metadatas"], strict=True)
        ]

    async def delete(self, namespace: str, ids: Sequence[str]) -> None:
        """Remove records by id (unknown ids are ignored)."""
        if ids:
            await asyncio.to_thread(
                self._call, namespace, "delete", lambda col: col.delete(ids=list(ids))
            )

    async def count(self, namespace: str) -> int:
        """How many records a namespace holds."""
        return int(await asyncio.to_thread(self._call, namespace, "count", lambda c: c.count()))
