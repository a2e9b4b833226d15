"""Durable task results: a finished task's result is stored before its dependants start."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.errors import ConfigError, PlanError

from ._plan import Task

__all__ = ["MemoryResultStore", "ResultStore", "SQLiteResultStore", "run_directory"]


def run_directory(run_id: str, runs_dir: str | Path | None = None) -> Path:
    """The folder a durable run owns: ``<runs_dir>/<run_id>``.

    It holds ``results.sqlite`` (task results, and a planner loop's round
    records) and the files other layers add.

    Args:
        run_id: the run's id (letters, digits, ``_``, ``-`` and ``.``).
        runs_dir: the root (default: ``<state_dir>/runs``, i.e. ``.plait/runs``).

    Raises:
        ConfigError: the run id could escape the root or is empty.
    """
    if not run_id or not all(c.isalnum() or c in "_-." for c in run_id) or run_id in {".", ".."}:
        raise ConfigError(
            f"run id {run_id!r} cannot name a run folder: use letters, digits, '_', '-' and '.'"
        )
    if runs_dir is None:
        from plait.settings import load_settings

        runs_dir = load_settings().state_dir / "runs"
    return Path(runs_dir) / run_id


class ResultStore(ABC):
    """Where a run keeps its plan and finished results so it can resume."""

    @abstractmethod
    async def save_task(self, run_id: str, task: Task) -> None:
        """Record that ``task`` belongs to the run (in arrival order)."""

    async def save_tasks(self, run_id: str, tasks: Sequence[Task]) -> None:
        """Record several tasks at once, in order (a store may write them in one go)."""
        for task in tasks:
            await self.save_task(run_id, task)

    @abstractmethod
    async def save_result(self, run_id: str, task_id: str, result: Any) -> None:
        """Record a finished task's result."""

    @abstractmethod
    async def load(self, run_id: str) -> tuple[list[Task], dict[str, Any]]:
        """The run's tasks (in arrival order) and the results stored so far."""

    @abstractmethod
    async def save_value(self, scope: str, name: str, value: Any) -> None:
        """Record a named value of a run (a finished plan, approval decisions, a side effect)."""

    @abstractmethod
    async def load_value(self, scope: str, name: str) -> tuple[bool, Any]:
        """``(True, value)`` for a recorded value, else ``(False, None)``."""


class MemoryResultStore(ResultStore):
    """A store that lives as long as the process (for tests and one-off runs)."""

    def __init__(self) -> None:
        self._tasks: dict[str, dict[str, Task]] = {}  # by id, in arrival order
        self._results: dict[str, dict[str, Any]] = {}
        self._values: dict[tuple[str, str], Any] = {}

    async def save_task(self, run_id: str, task: Task) -> None:
        self._tasks.setdefault(run_id, {}).setdefault(task.id, task)

    async def save_result(self, run_id: str, task_id: str, result: Any) -> None:
        self._results.setdefault(run_id, {})[task_id] = result

    async def load(self, run_id: str) -> tuple[list[Task], dict[str, Any]]:
        return list(self._tasks.get(run_id, {}).values()), dict(self._results.get(run_id, {}))

    async def save_value(self, scope: str, name: str, value: Any) -> None:
        self._values[scope, name] = value

    async def load_value(self, scope: str, name: str) -> tuple[bool, Any]:
        if (scope, name) in self._values:
            return True, self._values[scope, name]
        return False, None


class SQLiteResultStore(ResultStore):
    """Runs stored in one SQLite file; every write is committed before it returns.

    Writes that arrive while a commit is under way are committed together in the
    next transaction (group commit): each still returns only once it is on disk,
    but many tasks finishing at once share one ``fsync``.

    Results must be JSON-serializable: that is what makes them survive a crash.

    SQLite work runs on the store's own thread, never on asyncio's default
    executor: blocked work there (a stuck sync tool, say) cannot delay a commit.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._pending: list[_Write] = []
        # The connection is used by one thread at a time, even when an awaiting
        # writer was cancelled and its commit still runs.
        self._thread_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def _run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """``fn(*args)`` on the store's thread (one thread: SQLite writes are serial)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plait-store")
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(self.path, check_same_thread=False)
                conn.executescript(
                    "PRAGMA journal_mode=WAL;"
                    "CREATE TABLE IF NOT EXISTS tasks (run_id TEXT, seq INTEGER, task_id TEXT,"
                    " body TEXT, PRIMARY KEY (run_id, task_id));"
                    "CREATE TABLE IF NOT EXISTS results (run_id TEXT, task_id TEXT, result TEXT,"
                    " PRIMARY KEY (run_id, task_id));"
                    "CREATE TABLE IF NOT EXISTS named_values (scope TEXT, name TEXT, body TEXT,"
                    " PRIMARY KEY (scope, name));"
                )
            except sqlite3.DatabaseError as e:
                raise ConfigError(f"cannot open the run store {self.path}: {e}") from e
            self._conn = conn
        return self._conn

    async def _open(self) -> sqlite3.Connection:
        """The connection, opened on the store's thread (creating the file waits on the
        disk, which must not stall the event loop). Called with ``self._lock`` held."""
        if self._conn is not None:
            return self._conn
        return await self._run(self._db)

    async def _write(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        write = _Write(statements)
        self._pending.append(write)
        try:
            async with self._lock:
                if write.commit is None:  # no commit took it while this one waited
                    # Before the batch is taken: a failure here leaves it queued.
                    await self._open()
                    batch, self._pending = self._pending, []
                    commit = self._run(self._commit, batch)
                    for queued in batch:
                        queued.commit = commit
                    # Shielded: a cancelled writer must not stop a commit others wait on.
                    await asyncio.shield(commit)
        except BaseException:  # cancelled, or the database cannot be opened
            if write.commit is None:
                self._pending.remove(write)  # never sent: nothing to wait for
            raise
        assert write.commit is not None
        await asyncio.shield(write.commit)
        if write.error is not None:
            raise write.error

    async def save_task(self, run_id: str, task: Task) -> None:
        await self._write(_save_task(run_id, task))

    async def save_tasks(self, run_id: str, tasks: Sequence[Task]) -> None:
        await self._write(*(_save_task(run_id, task) for task in tasks))

    async def save_result(self, run_id: str, task_id: str, result: Any) -> None:
        try:
            body = json.dumps(result)
        except TypeError as e:
            raise PlanError(
                f"result is not JSON-serializable, so it cannot be stored durably ({e})",
                task_id=task_id,
            ) from e
        await self._write(
            ("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", (run_id, task_id, body))
        )

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        db = self._db()
        with self._thread_lock:
            try:
                return db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as e:
                raise _unreadable(self.path, e) from e

    async def load(self, run_id: str) -> tuple[list[Task], dict[str, Any]]:
        async with self._lock:
            rows = await self._run(
                self._query, "SELECT body FROM tasks WHERE run_id=? ORDER BY seq", (run_id,)
            )
            results = await self._run(
                self._query, "SELECT task_id, result FROM results WHERE run_id=?", (run_id,)
            )
        try:
            tasks = [Task.model_validate_json(body) for (body,) in rows]
            return tasks, {task_id: json.loads(body) for task_id, body in results}
        except (ValueError, TypeError) as e:  # pydantic's and json's errors are ValueErrors
            raise _unreadable(self.path, e) from e

    async def save_value(self, scope: str, name: str, value: Any) -> None:
        try:
            body = json.dumps(value)
        except TypeError as e:
            raise PlanError(
                f"value {name!r} of {scope!r} is not JSON-serializable, so it cannot be"
                f" stored durably ({e})"
            ) from e
        await self._write(
            ("INSERT OR REPLACE INTO named_values VALUES (?, ?, ?)", (scope, name, body))
        )

    async def load_value(self, scope: str, name: str) -> tuple[bool, Any]:
        async with self._lock:
            rows = await self._run(
                self._query,
                "SELECT body FROM named_values WHERE scope=? AND name=?",
                (scope, name),
            )
        if not rows:
            return False, None
        try:
            return True, json.loads(rows[0][0])
        except (ValueError, TypeError) as e:
            raise _unreadable(self.path, e) from e

    def _commit(self, batch: list[_Write]) -> None:
        """Run a batch of statements in one transaction (on the store's thread)."""
        with self._thread_lock:
            if self._conn is None:  # closed while this commit waited for the thread
                closed = sqlite3.ProgrammingError(f"the run store {self.path} was closed")
                for write in batch:
                    write.error = closed
                return
            _execute_commit(self._conn, batch)

    def close(self) -> None:
        """Finish the commit under way, then close the file and the store's thread.

        A writer cancelled mid-commit leaves its (shielded) commit running on the
        store's thread; closing the connection under it would crash the process.
        """
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._close_connection()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop (closing checkpoints the log)."""
        if self._executor is not None:
            await self._run(self._close_connection)  # after any commit already queued
        self.close()

    def _close_connection(self) -> None:
        with self._thread_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _unreadable(path: Path, error: BaseException) -> ConfigError:
    return ConfigError(
        f"the run store {path} cannot be used ({type(error).__name__}: {error});"
        " if it is damaged, remove the run's folder to start the run again"
    )


def _save_task(run_id: str, task: Task) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT OR IGNORE INTO tasks VALUES (?, (SELECT COUNT(*) FROM tasks WHERE run_id=?), ?, ?)",
        (run_id, run_id, task.id, task.model_dump_json()),
    )


@dataclass(slots=True)
class _Write:
    """One statement waiting to be committed, and how its commit went."""

    statements: tuple[tuple[str, tuple[Any, ...]], ...]
    commit: asyncio.Future[None] | None = None
    error: Exception | None = None


def _execute_commit(db: sqlite3.Connection, batch: list[_Write]) -> None:
    for write in batch:
        try:
            for sql, params in write.statements:
                db.execute(sql, params)
        except sqlite3.Error as e:  # that write fails; the others still commit
            write.error = e
    try:
        db.commit()
    except sqlite3.Error as e:
        db.rollback()
        for write in batch:
            write.error = write.error or e
