"""Run records: every workflow run owns ``<state_dir>/runs/<run_id>/`` with a ``run.json``.

Other files in the folder belong to other layers: ``results.sqlite`` (the
executor's durable results), ``checkpoints.sqlite`` and ``trace.jsonl``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plait.completions import Usage
from plait.errors import ConfigError
from plait.settings import load_settings

__all__ = ["RunRecord", "RunStatus", "list_runs", "new_run_id", "read_run", "runs_root"]

RunStatus = Literal["running", "done", "failed", "interrupted"]


class RunRecord(BaseModel):
    """What ``run.json`` holds about one run."""

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
    steps: dict[str, str] = Field(default_factory=dict, description="task id -> status")
    untrusted_sources: list[str] = Field(
        default_factory=list, description="untrusted sources the answer rests on"
    )
    violations: list[str] = Field(default_factory=list, description="calls a policy refused")
    team: dict[str, Any] | None = Field(
        default=None, description="a supervisor run's team trace: every decision, each worker"
    )

    def write(self, root: Path) -> Path:
        """Write ``run.json`` atomically (a reader never sees half a file)."""
        folder = root / self.run_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "run.json"
        temporary = folder / f".run.json.{os.getpid()}"
        temporary.write_text(self.model_dump_json(indent=2) + "\n")
        os.replace(temporary, target)
        return target


def runs_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, or ``<PLAIT_STATE_DIR>/runs``."""
    return Path(root) if root is not None else load_settings().state_dir / "runs"


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus random hex."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def read_run(run_id: str, root: str | Path | None = None) -> RunRecord:
    """The record of run ``run_id``.

    Raises:
        ConfigError: no such run, or its record is unreadable.
    """
    folder = runs_root(root)
    path = folder / run_id / "run.json"
    if "/" in run_id or "\\" in run_id or run_id in ("", ".", ".."):
        raise ConfigError(f"{run_id!r} is not a run id")
    if not path.is_file():
        known = [r.run_id for r in list_runs(root)[:5]]
        hint = f"; recent runs: {', '.join(known)}" if known else f"; no runs in {folder}"
        raise ConfigError(f"no run {run_id!r}{hint}")
    try:
        return RunRecord.model_validate_json(path.read_text())
    except (ValidationError, OSError) as e:
        raise ConfigError(
            f"cannot read the record of run {run_id!r}: {e}", location=str(path)
        ) from e


def list_runs(root: str | Path | None = None) -> list[RunRecord]:
    """Every readable run record, newest first."""
    folder = runs_root(root)
    records = []
    for path in folder.glob("*/run.json") if folder.is_dir() else ():
        try:
            records.append(RunRecord.model_validate(json.loads(path.read_text())))
        except (ValidationError, OSError, ValueError):
            continue  # a broken record does not hide the others
    return sorted(records, key=lambda r: r.started_at, reverse=True)
