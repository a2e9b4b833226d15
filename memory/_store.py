"""The chromadb store: an embedded ``PersistentClient`` or a Chroma server.

Vectors are computed by plait's embedder and handed to chroma, so collections are
created with no chroma embedding function (chroma's own default would download
a model at run time).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
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


_CHANGES = "plait-changes"
"""The change counter next to an embedded store's database (see :class:`ChromaStore`)."""


class _Local:
    """This process's one handle on an embedded store folder, shared by every
    :class:`ChromaStore` opened on it (chroma keeps one system per folder per
    process, so a reopen must close the only client there is)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.client: Any = None
        self.collections: dict[str, Any] = {}
        self.seen = -1  # the change count the open client reflects
        self.fd = -1

    def counter(self) -> int:
        """The counter's descriptor (the file is created with the folder)."""
        if self.fd < 0:
            self.path.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path / _CHANGES, os.O_RDWR | os.O_CREAT, 0o644)
        return self.fd

    def read_count(self) -> int:
        raw = os.pread(self.counter(), 32, 0).strip()
        return int(raw) if raw.isdigit() else 0

    def write_count(self, count: int) -> None:
        os.pwrite(self.counter(), b"%020d\n" % count, 0)

    def close_client(self) -> None:
        client, self.client = self.client, None
        self.collections = {}
        if client is not None and hasattr(client, "close"):
            client.close()


_LOCALS: dict[str, _Local] = {}
_LOCALS_LOCK = threading.Lock()


def _local(path: Path) -> _Local:
    key = str(path.resolve())
    with _LOCALS_LOCK:
        local = _LOCALS.get(key)
        if local is None or local.pid != os.getpid():
            # A forked child must not share its parent's descriptors, locks or chroma system.
            local = _LOCALS[key] = _Local(path)
        return local


class ChromaStore:
    """Collections of memory records in chromadb, one per namespace.

    Several processes may share one embedded store folder. chroma's embedded
    client keeps its vector index in memory and never sees another process's
    writes (queries then miss new records, or fail with "Error finding id"), so
    every write bumps a change counter in a small file next to the database
    (``plait-changes``) under an exclusive ``fcntl`` lock, and every operation
    first reads the counter under a shared lock (two system calls and a 20-byte
    read): when another process has written since, the client is reopened,
    which reloads the index from disk. Writes from different processes are thus
    serialized, and reads never see a write half done. The lock is advisory:
    other programs writing the folder through chroma directly are not seen.

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

    def _settings(self) -> Any:
        return _chroma().Settings(anonymized_telemetry=False)

    def _open_server(self) -> Any:
        if self._client is None:
            try:
                client = _chroma().HttpClient(
                    host=self.host, port=self.port, settings=self._settings()
                )
                client.heartbeat()
            except _store_errors() as e:
                raise MemoryStoreError(
                    f"cannot reach the Chroma server: {e}", location=self.location
                ) from e
            self._client = client
        return self._client

    def _open_local(self, local: _Local) -> Any:
        if local.client is None:
            try:
                client = _chroma().PersistentClient(path=str(local.path), settings=self._settings())
                client.heartbeat()
            except _store_errors() as e:
                raise MemoryStoreError(
                    f"cannot open the store: {e} (is the directory corrupt? move it away to "
                    "start afresh)",
                    location=self.location,
                ) from e
            local.client = client
        return local.client

    def _collection(self, client: Any, collections: dict[str, Any], namespace: str) -> Any:
        if namespace not in collections:
            collections[namespace] = client.get_or_create_collection(
                f"plait-{namespace}",
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
            )
        return collections[namespace]

    def _call(
        self, namespace: str, op: str, fn: Any, *args: Any, write: bool = False, **kwargs: Any
    ) -> Any:
        if not _NAME.match(namespace):
            raise ConfigError(
                f"memory namespace {namespace!r} must be 1-50 characters of lowercase letters, "
                "digits, '-' or '_', starting and ending with a letter or digit"
            )
        try:
            if self.path is None:
                with self._lock:
                    client = self._open_server()
                    col = self._collection(client, self._collections, namespace)
                    return fn(col, *args, **kwargs)
            if self.path.exists() and not self.path.is_dir():
                raise MemoryStoreError("is not a directory", location=self.location)
            local = _local(self.path)
            with local.lock:
                fd = local.counter()
                fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                try:
                    count = local.read_count()
                    if count != local.seen:
                        local.close_client()  # another process wrote: reload from disk
                    client = self._open_local(local)
                    local.seen = count
                    try:
                        col = self._collection(client, local.collections, namespace)
                        return fn(col, *args, **kwargs)
                    finally:
                        if write:
                            local.write_count(count + 1)
                            local.seen = count + 1
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
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

        await asyncio.to_thread(self._call, namespace, "add", op, write=True)

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
                self._call, namespace, "delete", lambda col: col.delete(ids=list(ids)), write=True
            )

    async def count(self, namespace: str) -> int:
        """How many records a namespace holds."""
        return int(await asyncio.to_thread(self._call, namespace, "count", lambda c: c.count()))
