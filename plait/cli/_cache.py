"""``plait cache stats|clear [TARGET]``: look after model-call cache files.

TARGET is a cache file, a workflow file (the file its ``cache: {path}`` names)
or a run id (the cache in that run's folder); without one, the caches of every
run folder under ``.plait/runs``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._workflow import dump_json

__all__ = ["cache_clear_command", "cache_stats_command"]


def _targets(target: str | None) -> list[Path]:
    """The cache files ``target`` names."""
    from plait.errors import ConfigError
    from plait.graphs.workflows._cache import RUN_CACHE_FILE, shared_cache_path
    from plait.graphs.workflows._runs import runs_root

    runs = runs_root()
    if target is None:
        return sorted(runs.glob(f"*/{RUN_CACHE_FILE}"))
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from plait.graphs import validate_workflow

        spec = validate_workflow(path).cache_spec
        if spec is None:
            raise ConfigError(f"the workflow {path} has no cache entry")
        shared = shared_cache_path(spec, path.parent)
        return [shared] if shared is not None else sorted(runs.glob(f"*/{RUN_CACHE_FILE}"))
    if path.is_file():
        return [path]
    if (
        all(c.isalnum() or c in "_-." for c in target)
        and (runs / target / RUN_CACHE_FILE).is_file()
    ):
        return [runs / target / RUN_CACHE_FILE]
    raise ConfigError(
        f"no model-call cache at {target!r}: name a cache file, a workflow file or a run id"
    )


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def cache_stats_command(args: argparse.Namespace) -> int:
    """One line per cache file: entries, size, hits and what they saved."""
    from plait.backends import SQLiteCacheStore

    found = []
    for path in _targets(args.target):
        store = SQLiteCacheStore(path, max_bytes=None)
        try:
            found.append(store.stats())
        finally:
            store.close()
    if args.json:
        print(
            dump_json(
                [s.model_dump(mode="json", exclude={"max_entries", "max_bytes"}) for s in found]
            )
        )
        return 0
    if not found:
        print("no model-call caches yet (cache: true in a workflow file keeps one per run)")
        return 0
    for s in found:
        newest = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.newest)) if s.newest else "-"
        hits = "hit" if s.hits == 1 else "hits"
        print(
            f"{s.path}: {s.entries} entries, {_size(s.bytes)}, newest {newest}; {s.hits} {hits}"
            f" saved {s.saved_prompt_tokens} prompt + {s.saved_completion_tokens} generated"
            f" tokens, cost {s.saved_cost:.4f}"
        )
    return 0


def cache_clear_command(args: argparse.Namespace) -> int:
    """Remove every stored answer of the named cache files."""
    from plait.backends import SQLiteCacheStore

    removed = 0
    targets = _targets(args.target)
    for path in targets:
        store = SQLiteCacheStore(path, max_bytes=None)
        try:
            removed += store.clear()
        finally:
            store.close()
    files = "file" if len(targets) == 1 else "files"
    print(f"removed {removed} entries from {len(targets)} cache {files}")
    return 0
