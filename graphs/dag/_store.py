"""Durable task results: a finished task's result is stored before its dependants start."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from plait.errors import ConfigError, PlanError

from ._plan import Task

__all__ = ["MemoryResultStore", "ResultStore", "SQLiteResultStore", "run_directory"]


def run_directory(run_id: str, runs_dir: str | Path | None = None) -> Path:
    """The folder a durable run owns: ``<runs_dir>/<run_id>``.

    It holds ``results.sqlite`` (task results), ``checkpoints.sqlite`` (the
    LangGraph checkpoints of a planner loop) and the files other layers add.

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

    Results must be JSON-serializable: that is what makes them survive a crash.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

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

    async def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        async with self._lock:
            db = self._db()
            await asyncio.to_thread(_execute_commit, db, sql, params)

    async def save_task(self, run_id: str, task: Task) -> None:
        await self._write(
            "INSERT OR IGNORE INTO tasks VALUES (?, (SELECT COUNT(*) FROM tasks WHERE run_id=?),"
            " ?, ?)",
            (run_id, run_id, task.id, task.model_dump_json()),
        )

    async def save_result(self, run_id: str, task_id: str, result: Any) -> None:
        try:
            body = json.dumps(result)
        except TypeError as e:
            raise PlanError(
                f"result is not JSON-serializable, so it cannot be stored durably ({e})",
                task_id=task_id,
            ) from e
        await self._write(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?)", (run_id, task_id, body)
        )

    async def load(self, run_id: str) -> tuple[list[Task], dict[str, Any]]:
        async with self._lock:
            db = self._db()
            rows = db.execute(
                "SELECT body FROM tasks WHERE run_id=? ORDER BY seq", (run_id,)
            ).fetchall()
            results = db.execute(
                "SELECT task_id, result FROM results WHERE run_id=?", (run_id,)
            ).fetchall()
        tasks = [Task.model_validate_json(body) for (body,) in rows]
        return tasks, {task_id: json.loads(body) for task_id, body in results}

    async def save_value(self, scope: str, name: str, value: Any) -> None:
        try:
            body = json.dumps(value)
        except TypeError as e:
            raise PlanError(
                f"value {name!r} of {scope!r} is not JSON-serializable, so it cannot be"
                f" stored durably ({e})"
            ) from e
        await self._write(
            "INSERT OR REPLACE INTO named_values VALUES (?, ?, ?)", (scope, name, body)
        )

    async def load_value(self, scope: str, name: str) -> tuple[bool, Any]:
        async with self._lock:
            row = (
                self._db()
                .execute("SELECT body FROM named_values WHERE scope=? AND name=?", (scope, name))
                .fetchone()
            )
        return (True, json.loads(row[0])) if row else (False, None)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _execute_commit(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    db.execute(sql, params)
    db.commit()
