"""Where a model-call cache keeps its answers: :class:`CacheStore` and its SQLite file.

One SQLite file holds the stored completions (keyed by the hash of a canonical
request), when each was last used (for least-recently-used eviction), and the
hashes of model files (a GGUF file is hashed once, not on every call).

Several runs, in one process or several, may share a file: it is opened in WAL
mode with a busy timeout, and each store object does all its SQLite work on one
thread of its own, never on asyncio's default executor.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from plait.completions import Completion
from plait.errors import ConfigError, ModelLoadError
from plait.provenance import Source

__all__ = ["CacheEntry", "CacheStats", "CacheStore", "SQLiteCacheStore", "hash_file"]

_FORMAT = "1"
"""The layout of the cache file; a file of another layout is refused, not misread."""

_BUSY_TIMEOUT_MS = 30_000
"""How long a write waits for another process's write to the same file."""

_log = logging.getLogger("plait.cache")
_T = TypeVar("_T")


@dataclass(frozen=True)
class CacheEntry:
    """One stored answer.

    Attributes:
        completion: the completion as the model first returned it.
        streamed: the text as it streamed (``None``: it was not streamed).
        sources: what its caller had read when it was computed (its provenance).
        cost: what it cost when computed (0 when unpriced).
    """

    completion: Completion
    streamed: str | None = None
    sources: frozenset[Source] = frozenset()
    cost: float = 0.0


class CacheStats(BaseModel):
    """What a cache file holds and what it has saved.

    Attributes:
        path: the file.
        entries: stored answers.
        bytes: their size.
        hits: requests answered from them, over the file's life.
        saved_prompt_tokens, saved_completion_tokens: the tokens those hits did not
            recompute.
        saved_cost: what those hits would have cost (priced when stored).
        max_entries, max_bytes: the caps (``None``: none).
        oldest, newest: when the oldest and newest entries were stored (Unix time).
    """

    model_config = ConfigDict(frozen=True)

    path: str
    entries: int = 0
    bytes: int = 0
    hits: int = 0
    saved_prompt_tokens: int = 0
    saved_completion_tokens: int = 0
    saved_cost: float = 0.0
    max_entries: int | None = None
    max_bytes: int | None = None
    oldest: float | None = None
    newest: float | None = None


class CacheStore(ABC):
    """Storage of a :class:`~plait.backends.CachedBackend`: answers by key, file hashes."""

    @abstractmethod
    async def get(self, key: str) -> CacheEntry | None:
        """The entry stored under ``key`` (and mark it used), or ``None``."""

    @abstractmethod
    async def put(self, key: str, entry: CacheEntry, *, backend: str) -> None:
        """Store ``entry`` under ``key`` (replacing any), evicting to stay within the caps."""

    @abstractmethod
    async def file_hash(self, path: Path) -> str:
        """The SHA-256 of a file's contents, computed once per file version.

        Raises:
            ModelLoadError: the file cannot be read.
        """

    async def aclose(self) -> None:
        """Release the store's file and thread."""
        return None


# Files hashed in this process, by (path, size, mtime): a second store of the
# same model (another run's file) need not read it again.
_HASHED: dict[tuple[str, int, int], str] = {}


class SQLiteCacheStore(CacheStore):
    """A cache in one SQLite file, shareable by concurrent runs and processes.

    Args:
        path: the file (created with its folder on first use).
        max_entries: most entries kept (``None``: no cap).
        max_bytes: most bytes of stored answers kept (``None``: no cap).

    When a new entry passes a cap, the least recently used entries are evicted.

    Raises:
        ConfigError: (on first use) the file is damaged, or is not a plait cache.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_entries: int | None = None,
        max_bytes: int | None = 256 * 2**20,
    ) -> None:
        if max_entries is not None and max_entries < 1:
            raise ConfigError(f"a model-call cache needs max_entries >= 1, got {max_entries}")
        if max_bytes is not None and max_bytes < 1:
            raise ConfigError(f"a model-call cache needs max_bytes >= 1, got {max_bytes}")
        self.path = Path(path)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteCacheStore({str(self.path)!r})"

    # A copy (pickled for a Ray worker) opens the same file itself.
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "max_entries": self.max_entries, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"], max_entries=state["max_entries"], max_bytes=state["max_bytes"]
        )

    # -- the store's thread ----------------------------------------------------

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plait-cache")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if tables and "cache_format" not in tables:
                raise ConfigError(
                    f"{self.path} is a SQLite file but not a plait model-call cache"
                    " (name a new file for the cache)"
                )
            conn.executescript(
                f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS};"
                "PRAGMA journal_mode=WAL;"
                "PRAGMA synchronous=NORMAL;"  # a lost last entry costs one model call
                "CREATE TABLE IF NOT EXISTS cache_format (version TEXT);"
                "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, backend TEXT,"
                " body TEXT, bytes INTEGER, prompt_tokens INTEGER, completion_tokens INTEGER,"
                " cost REAL, hits INTEGER DEFAULT 0, created REAL, used REAL);"
                "CREATE INDEX IF NOT EXISTS entries_by_use ON entries (used);"
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER,"
                " mtime_ns INTEGER, sha256 TEXT);"
            )
            with conn:
                rows = conn.execute("SELECT version FROM cache_format").fetchall()
                if not rows:
                    conn.execute("INSERT INTO cache_format VALUES (?)", (_FORMAT,))
                elif rows[0][0] != _FORMAT:
                    raise ConfigError(
                        f"the model-call cache {self.path} has layout {rows[0][0]!r}, this"
                        f" plait reads {_FORMAT!r}: clear it (plait cache clear {self.path})"
                    )
        except sqlite3.DatabaseError as e:
            conn.close()
            raise _damaged(self.path, e) from e
        except ConfigError:
            conn.close()
            raise
        return conn

    def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn(connection)``, with SQLite's errors made plait's (on the store's thread)."""
        with self._lock:
            db = self._db()
            try:
                return fn(db)
            except sqlite3.DatabaseError as e:
                if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                    raise
                raise _damaged(self.path, e) from e

    # -- answers ---------------------------------------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        try:
            body = await self._run(self._call, lambda db: _get(db, key))
        except sqlite3.OperationalError as e:  # locked past the busy timeout: ask the model
            _log.warning("model-call cache %s: not read (%s)", self.path, e)
            return None
        if body is None:
            return None
        try:
            data = json.loads(body)
            return CacheEntry(
                completion=Completion.model_validate(data["completion"]),
                streamed=data.get("streamed"),
                sources=frozenset(Source.model_validate(s) for s in data.get("sources", ())),
                cost=float(data.get("cost", 0.0)),
            )
        except (ValueError, TypeError, KeyError) as e:  # pydantic's errors are ValueErrors
            raise _damaged(self.path, e) from e

    async def put(self, key: str, entry: CacheEntry, *, backend: str) -> None:
        body = json.dumps(
            {
                "completion": entry.completion.model_dump(mode="json"),
                "streamed": entry.streamed,
                "sources": [s.model_dump(mode="json") for s in sorted(entry.sources, key=str)],
                "cost": entry.cost,
            },
            ensure_ascii=False,
        )
        usage = entry.completion.usage
        size = len(body.encode())
        if self.max_bytes is not None and size > self.max_bytes:
            return  # larger than the whole cache may be: not worth evicting everything for
        row = (key, backend, body, size, usage.prompt_tokens, usage.completion_tokens, entry.cost)
        try:
            await self._run(self._call, lambda db: self._put(db, row))
        except sqlite3.OperationalError as e:  # locked past the busy timeout: the answer stands
            _log.warning("model-call cache %s: an answer was not stored (%s)", self.path, e)

    def _put(self, db: sqlite3.Connection, row: tuple[Any, ...]) -> None:
        now = time.time()
        with db:
            db.execute(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (*row, now, now),
            )
            self._evict(db)

    def _evict(self, db: sqlite3.Connection) -> None:
        """Drop least recently used entries until the caps hold (inside the put's transaction)."""
        count, size = db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM entries").fetchone()
        over_count = count - self.max_entries if self.max_entries is not None else 0
        over_bytes = size - self.max_bytes if self.max_bytes is not None else 0
        if over_count <= 0 and over_bytes <= 0:
            return
        doomed: list[str] = []
        for key, size_of in db.execute("SELECT key, bytes FROM entries ORDER BY used, rowid"):
            if over_count <= 0 and over_bytes <= 0:
                break
            doomed.append(key)
            over_count -= 1
            over_bytes -= size_of
        db.executemany("DELETE FROM entries WHERE key=?", [(k,) for k in doomed])

    # -- model files -----------------------------------------------------------

    async def file_hash(self, path: Path) -> str:
        version = _version(path)
        if version in _HASHED:
            return _HASHED[version]
        known = await self._run(self._call, lambda db: _known_hash(db, version))
        if known is None:
            known = await asyncio.to_thread(hash_file, path)
            await self._run(self._call, lambda db: _save_hash(db, version, known))
        _HASHED[version] = known
        return known

    # -- looking after the file ------------------------------------------------

    def stats(self) -> CacheStats:
        """What the file holds (blocking: for the command line and scripts)."""
        with self._lock:
            db = self._db()
            try:
                row = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(hits), 0),"
                    " COALESCE(SUM(hits * prompt_tokens), 0),"
                    " COALESCE(SUM(hits * completion_tokens), 0), COALESCE(SUM(hits * cost), 0),"
                    " MIN(created), MAX(created) FROM entries"
                ).fetchone()
            except sqlite3.DatabaseError as e:
                raise _damaged(self.path, e) from e
        return CacheStats(
            path=str(self.path),
            entries=row[0],
            bytes=row[1],
            hits=row[2],
            saved_prompt_tokens=row[3],
            saved_completion_tokens=row[4],
            saved_cost=row[5],
            max_entries=self.max_entries,
            max_bytes=self.max_bytes,
            oldest=row[6],
            newest=row[7],
        )

    def clear(self) -> int:
        """Remove every stored answer (blocking); return how many there were."""
        with self._lock:
            db = self._db()
            try:
                with db:
                    removed = db.execute("DELETE FROM entries").rowcount
                db.execute("VACUUM")
            except sqlite3.DatabaseError as e:
                raise _damaged(self.path, e) from e
        return int(removed)

    def close(self) -> None:
        """Close the file and the store's thread (blocking)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


def _get(db: sqlite3.Connection, key: str) -> str | None:
    with db:
        row = db.execute("SELECT body FROM entries WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        db.execute("UPDATE entries SET hits=hits+1, used=? WHERE key=?", (time.time(), key))
    return str(row[0])


def _known_hash(db: sqlite3.Connection, version: tuple[str, int, int]) -> str | None:
    row = db.execute(
        "SELECT sha256 FROM files WHERE path=? AND size=? AND mtime_ns=?", version
    ).fetchone()
    return None if row is None else str(row[0])


def _save_hash(db: sqlite3.Connection, version: tuple[str, int, int], digest: str) -> None:
    with db:
        db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", (*version, digest))


def hash_file(path: Path) -> str:
    """``sha256:<hex>`` of a file's contents, read once per version in this process (blocking).

    Raises:
        ModelLoadError: the file cannot be read.
    """
    version = _version(path)
    if version not in _HASHED:
        try:
            with path.open("rb") as f:
                _HASHED[version] = "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as e:
            raise ModelLoadError(str(path), f"cannot read it ({e.strerror})") from e
    return _HASHED[version]


def _version(path: Path) -> tuple[str, int, int]:
    """A file's identity for its hash: where it is, its size and when it last changed."""
    try:
        status = path.stat()
    except OSError as e:
        raise ModelLoadError(str(path), f"cannot read it ({e.strerror})") from e
    return (str(path.resolve()), status.st_size, status.st_mtime_ns)


def _damaged(path: Path, error: BaseException) -> ConfigError:
    return ConfigError(
        f"the model-call cache {path} cannot be used ({type(error).__name__}: {error});"
        " if it is damaged, delete the file (a new, empty cache is made in its place)"
    )
