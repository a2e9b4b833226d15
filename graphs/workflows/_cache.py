"""A workflow's ``cache:`` entry: the store its backends' model-call caches share.

With a ``path`` every run of the file shares one SQLite file. Without one each
run keeps its own file in its folder (``model_cache.sqlite``), so a resumed run
reuses the calls its earlier attempts paid for: the backends are built once per
loaded file, so they reach the running one's file through :class:`RunCacheStore`,
which looks it up in a context variable that ``Workflow.arun`` sets (as the
run's meter is found, see ``_metering``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from pathlib import Path

from plait.backends import CacheEntry, CacheStore, SQLiteCacheStore
from plait.backends._cache_store import hash_file

from ._schema import CacheSpec

__all__ = ["RUN_CACHE_FILE", "RunCacheStore", "cache_store", "run_cache", "shared_cache_path"]

RUN_CACHE_FILE = "model_cache.sqlite"
"""The cache file in a run's folder, when the workflow names no shared one."""

_CURRENT: ContextVar[SQLiteCacheStore | None] = ContextVar("plait_run_cache", default=None)


def _caps(spec: CacheSpec) -> dict[str, int | None]:
    max_bytes = None if spec.max_mb is None else max(1, int(spec.max_mb * 2**20))
    return {"max_entries": spec.max_entries, "max_bytes": max_bytes}


class RunCacheStore(CacheStore):
    """The cache file of the run in progress (calls outside a run are not cached)."""

    def __init__(self, spec: CacheSpec) -> None:
        self.spec = spec

    def open_for(self, folder: Path) -> SQLiteCacheStore:
        """The store of the run whose folder is ``folder``."""
        return SQLiteCacheStore(folder / RUN_CACHE_FILE, **_caps(self.spec))

    async def get(self, key: str) -> CacheEntry | None:
        store = _CURRENT.get()
        return None if store is None else await store.get(key)

    async def put(self, key: str, entry: CacheEntry, *, backend: str) -> None:
        store = _CURRENT.get()
        if store is not None:
            await store.put(key, entry, backend=backend)

    async def file_hash(self, path: Path) -> str:
        store = _CURRENT.get()
        if store is None:
            return await asyncio.to_thread(hash_file, path)
        return await store.file_hash(path)


def shared_cache_path(spec: CacheSpec, base_dir: Path) -> Path | None:
    """The file every run shares (``None``: each run keeps its own, :data:`RUN_CACHE_FILE`)."""
    if spec.path is None:
        return None
    path = Path(spec.path)
    return path if path.is_absolute() else base_dir / path


def cache_store(spec: CacheSpec, base_dir: Path) -> CacheStore:
    """The store a workflow's ``cache`` entry asks for."""
    shared = shared_cache_path(spec, base_dir)
    return RunCacheStore(spec) if shared is None else SQLiteCacheStore(shared, **_caps(spec))


@contextlib.asynccontextmanager
async def run_cache(store: CacheStore | None, folder: Path) -> AsyncIterator[None]:
    """Give a run its own cache file while it runs, when ``store`` keeps one per run."""
    if not isinstance(store, RunCacheStore):
        yield
        return
    opened = store.open_for(folder)
    token = _CURRENT.set(opened)
    try:
        yield
    finally:
        _CURRENT.reset(token)
        await opened.aclose()
