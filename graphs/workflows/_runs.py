"""Run records: every workflow run owns ``<state_dir>/runs/<run_id>/`` with a ``run.json``.

Other files in the folder belong to other layers: ``results.sqlite`` (the
executor's durable results and a planner loop's round records) and ``trace.jsonl``.
``run.lock`` is held (an OS file lock) by the process running the run, so a
second process cannot run (or resume) the same run at the same time.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plait._secrets import NO_SECRETS, Redactor
from plait.completions import Usage
from plait.errors import ConfigError
from plait.settings import load_settings

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Attempt",
    "RunRecord",
    "RunStatus",
    "UnreadableRun",
    "list_runs",
    "lock_run",
    "new_run_id",
    "read_run",
    "run_is_held",
    "runs_root",
    "scan_runs",
]

RunStatus = Literal["queued", "running", "done", "failed", "interrupted"]
"""``queued``: accepted by ``plait serve`` and waiting for a free run slot."""


class Attempt(BaseModel):
    """One attempt at a run: the first run, then each resume."""

    model_config = ConfigDict(frozen=True)

    started_at: float
    finished_at: float | None = None
    status: RunStatus
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    cost_saved: float = Field(default=0.0, description="what model-call cache hits saved")
    error: str | None = None


class RunRecord(BaseModel):
    """What ``run.json`` holds about one run.

    ``status``, ``error``, ``answer`` and ``steps`` are the latest attempt's;
    ``started_at`` is when the first attempt started, ``usage``, ``cost`` and
    ``cost_saved`` are totals over every attempt, and ``attempts`` has each one (oldest first).
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    workflow: str = Field(description="the workflow file, as given")
    kind: str
    status: RunStatus
    inputs: dict[str, Any] = Field(default_factory=dict)
    answer: Any = None
    error: str | None = None
    started_at: float
    finished_at: float | None = None
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    cost_saved: float = Field(default=0.0, description="what model-call cache hits saved")
    steps: dict[str, str] = Field(default_factory=dict, description="task id -> status")
    untrusted_sources: list[str] = Field(
        default_factory=list, description="untrusted sources the answer rests on"
    )
    violations: list[str] = Field(default_factory=list, description="calls a policy refused")
    team: dict[str, Any] | None = Field(
        default=None, description="a supervisor run's team trace: every decision, each worker"
    )
    attempts: list[Attempt] = Field(
        default_factory=list, description="every attempt (the first run, then each resume)"
    )
    redacted_inputs: list[str] = Field(
        default_factory=list,
        description="inputs whose value held a secret and is stored as ***: a resume takes"
        " them from the workflow's defaults (the environment) or --input again",
    )

    @classmethod
    def started(
        cls,
        run_id: str,
        workflow: str,
        kind: str,
        inputs: dict[str, Any],
        earlier: list[Attempt],
        *,
        started_at: float,
    ) -> RunRecord:
        """The record of an attempt that starts now, after the ``earlier`` ones (a resume)."""
        return cls(
            run_id=run_id,
            workflow=workflow,
            kind=kind,
            status="running",
            inputs=inputs,
            started_at=earlier[0].started_at if earlier else started_at,
            usage=sum((a.usage for a in earlier), Usage()),
            cost=sum(a.cost for a in earlier),
            cost_saved=sum(a.cost_saved for a in earlier),
            attempts=[*earlier, Attempt(started_at=started_at, status="running")],
        )

    def ended(self, attempt: Attempt, outcome: dict[str, Any]) -> RunRecord:
        """This record once its latest attempt ended as ``attempt``.

        ``outcome``: what the run reported (answer, steps, untrusted sources,
        violations, team), empty when it did not finish. Usage, cost and cost saved become
        totals over every attempt.
        """
        earlier = self.attempts[:-1]
        return self.model_copy(
            update={
                **outcome,
                "status": attempt.status,
                "error": attempt.error,
                "finished_at": attempt.finished_at,
                "usage": sum((a.usage for a in earlier), Usage()) + attempt.usage,
                "cost": sum(a.cost for a in earlier) + attempt.cost,
                "cost_saved": sum(a.cost_saved for a in earlier) + attempt.cost_saved,
                "attempts": [*earlier, attempt],
            }
        )

    def write(self, root: Path, redactor: Redactor = NO_SECRETS) -> Path:
        """Write ``run.json`` atomically (a reader never sees half a file), secrets hidden."""
        folder = root / self.run_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "run.json"
        temporary = folder / f".run.json.{os.getpid()}"
        data = self.model_dump(mode="json")
        if redactor:
            hidden = sorted(k for k, v in self.inputs.items() if redactor.contains(v))
            data = redactor.data(data)
            data["redacted_inputs"] = sorted({*self.redacted_inputs, *hidden})
        temporary.write_text(
            json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        os.replace(temporary, target)
        return target

    def earlier_attempts(self) -> list[Attempt]:
        """This record's attempts as seen by a new attempt (a resume).

        A record still ``running`` whose run is not held by any process ended
        without recording (killed, or the machine stopped): that attempt is
        counted as interrupted. Records written before attempts were kept give
        their one attempt from the top-level fields.
        """
        if self.status == "queued" and not self.attempts:
            return []  # accepted by plait serve, never started: no attempt yet
        attempts = list(self.attempts) or [
            Attempt(
                started_at=self.started_at,
                finished_at=self.finished_at,
                status=self.status,
                usage=self.usage,
                cost=self.cost,
                cost_saved=self.cost_saved,
                error=self.error,
            )
        ]
        last = attempts[-1]
        if last.status == "running":
            attempts[-1] = last.model_copy(
                update=dict(
                    status="interrupted",
                    error="the process ended without recording how (killed or crashed)",
                )
            )
        return attempts


def runs_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, or ``<PLAIT_STATE_DIR>/runs``."""
    return Path(root) if root is not None else load_settings().state_dir / "runs"


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus random hex."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def read_run(run_id: str, root: str | Path | None = None) -> RunRecord:
    """The record of run ``run_id``.

    Raises:
        ConfigError: no such run, or its record is unreadable (not UTF-8, not
            JSON, not a run record), saying which file and why.
    """
    folder = runs_root(root)
    path = folder / run_id / "run.json"
    if "/" in run_id or "\\" in run_id or run_id in ("", ".", ".."):
        raise ConfigError(f"{run_id!r} is not a run id")
    if not path.is_file():
        known = [r.run_id for r in list_runs(root)[:5]]
        hint = f"; recent runs: {', '.join(known)}" if known else f"; no runs in {folder}"
        raise ConfigError(f"no run {run_id!r}{hint}")
    return _read_record(path, run_id)


class UnreadableRun(BaseModel):
    """A run folder whose ``run.json`` cannot be read, and why."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    path: str
    reason: str


def _read_record(path: Path, run_id: str) -> RunRecord:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        reason = f"not UTF-8 text (byte {e.start})"
    except OSError as e:
        reason = e.strerror or str(e)
    else:
        try:
            return RunRecord.model_validate_json(text)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            reason = (
                f"not valid JSON ({first['msg']})"
                if first["type"] == "json_invalid"
                else f"not a run record ({where}: {first['msg']})"
            )
    raise ConfigError(
        f"the record of run {run_id!r} cannot be read: {reason}; it was damaged or written"
        " by something else (remove the run's folder to forget the run)",
        location=str(path),
    )


def scan_runs(root: str | Path | None = None) -> tuple[list[RunRecord], list[UnreadableRun]]:
    """Every readable run record (newest first) and every unreadable one."""
    folder = runs_root(root)
    records, broken = [], []
    for path in sorted(folder.glob("*/run.json")) if folder.is_dir() else ():
        try:
            records.append(_read_record(path, path.parent.name))
        except ConfigError as e:  # a broken record does not hide the others
            broken.append(UnreadableRun(run_id=path.parent.name, path=str(path), reason=str(e)))
    return sorted(records, key=lambda r: r.started_at, reverse=True), broken


def list_runs(root: str | Path | None = None) -> list[RunRecord]:
    """Every readable run record, newest first."""
    return scan_runs(root)[0]


@contextlib.contextmanager
def lock_run(folder: Path, run_id: str) -> Iterator[None]:
    """Hold ``folder/run.lock`` (an OS file lock) while the run is running.

    The lock goes with the process: it is released when the block ends and also
    when the process dies, so a crashed run can be resumed at once.

    Raises:
        ConfigError: another process (or another run in this one) holds the run.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = folder / "run.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            raise ConfigError(
                f"run {run_id} is already running{holder}; wait for it to end (or stop it)"
                " before running or resuming it again",
                location=str(path),
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def run_is_held(folder: Path) -> bool:
    """Whether some process holds the run's lock now (it is really running)."""
    path = folder / "run.lock"
    if fcntl is None or not path.is_file():  # pragma: no cover
        return False
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def _holder(descriptor: int) -> str:
    try:
        pid = os.pread(descriptor, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {pid})" if pid.isdigit() else ""
