"""``load_workflow`` and ``Workflow``: a YAML file made runnable.

Each run owns ``.plait/runs/<run_id>/``: ``run.json`` (the record, written when
the run starts and when it ends — also on Ctrl-C) and ``results.sqlite`` (every
finished task's result, stored before its dependants start). Running again with
the same ``run_id`` reuses the stored results, so an interrupted run resumes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from plait import tracing
from plait._sync import run_sync
from plait.agents import Agent, TeamTrace
from plait.backends import Backend
from plait.completions import Usage
from plait.errors import ConfigError, RunError, is_control_flow
from plait.memory import Memory
from plait.tools import Toolset

from ..dag import Plan, SQLiteResultStore
from ._build import build, close_backends
from ._checks import validate_workflow, validated
from ._inputs import convert_input
from ._kinds import RUNNERS, RunContext, WorkflowEvent, steps_plan
from ._metering import RunMeter, metering
from ._runs import RunRecord, new_run_id, runs_root
from ._schema import StepsWorkflow, WorkflowSpec

__all__ = ["Workflow", "WorkflowEvent", "WorkflowResult", "load_workflow", "validate_workflow"]


class WorkflowResult(BaseModel):
    """How a workflow run ended.

    Attributes:
        run_id: the run's id (``plait runs show ID``, ``plait run --resume ID``).
        ok: the run finished and every step succeeded.
        answer: the workflow's answer (``None`` when it failed early).
        status: ``done``, ``failed`` or ``interrupted``.
        error: why it failed.
        results: step/task id -> result, for the tasks that finished.
        usage: tokens over every model call.
        cost: cost over every priced model call.
        run_dir: the run's folder.
        team: a supervisor run's team trace (every decision, each worker's report).
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    ok: bool
    answer: Any = None
    status: str = "done"
    error: str | None = None
    results: dict[str, Any] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    run_dir: str = ""
    team: TeamTrace | None = None


def load_workflow(
    path: str | os.PathLike[str],
    *,
    backends: Mapping[str, Backend] | None = None,
    env: Mapping[str, str] | None = None,
    runs_dir: str | os.PathLike[str] | None = None,
) -> Workflow:
    """Validate a workflow file and build its backends, tools, memory and agents.

    Args:
        path: the YAML file.
        backends: backends to use instead of the file's entries of the same name
            (tests pass :class:`~plait.backends.testing.ScriptedBackend` here).
        env: the environment for ``${NAME}`` (default: ``os.environ``).
        runs_dir: where run folders go (default ``<PLAIT_STATE_DIR>/runs``).

    Raises:
        WorkflowValidationError: the file is invalid (every problem listed).
        ConfigError: something it names cannot be built (an import, a folder).
    """
    spec, source = validated(path, env)
    return Workflow(spec, Path(path), backends=backends, runs_dir=runs_dir, where=source.where)


class Workflow:
    """A validated workflow with its parts built (models load on first use).

    Attributes:
        spec: the validated file (:class:`WorkflowSpec`).
        path: the file.
        where: (argument) the position of a part of the file, for messages
            (``load_workflow`` passes the file's own).
        agents, tools, backends, memory: what the file declares, built.
    """

    def __init__(
        self,
        spec: WorkflowSpec,
        path: Path,
        *,
        backends: Mapping[str, Backend] | None = None,
        runs_dir: str | os.PathLike[str] | None = None,
        where: Callable[[tuple[str | int, ...]], object] | None = None,
    ) -> None:
        self.spec = spec
        self.path = path
        self._built = build(spec, path.parent, backends, where)
        self.agents: dict[str, Agent[Any]] = self._built.agents
        self.tools: Toolset = self._built.tools
        self.backends: dict[str, Backend] = self._built.backends
        self.memory: Memory | None = self._built.memory
        self.runs_dir = runs_root(runs_dir)

    @property
    def kind(self) -> str:
        return self.spec.workflow.kind

    def resolve_inputs(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Inputs with defaults applied and values converted to their declared types.

        Raises:
            ConfigError: an unknown input, a missing required one, or a bad value.
        """
        declared = self.spec.inputs
        unknown = sorted(set(given) - set(declared))
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigError(
                f"unknown input(s) {', '.join(unknown)}; this workflow takes: {known}"
            )
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in given:
                values[name] = convert_input(name, given[name], spec)
            elif spec.default is not None:
                values[name] = spec.default
            else:
                raise ConfigError(f"input {name!r} is required (pass --input {name}=...)")
        return values

    async def arun(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        on_event: Callable[[WorkflowEvent], None] | None = None,
    ) -> WorkflowResult:
        """Run the workflow; a run id that exists already resumes that run.

        A run-time failure (:class:`~plait.errors.RunError`) ends the run as
        ``failed`` in its result; anything else is recorded and raised.

        Raises:
            ConfigError: bad inputs (nothing has run), or a misconfiguration found
                while running (the run is recorded as ``failed``).
            PlanError: a plan given in the file turned out invalid while running.
            asyncio.CancelledError, KeyboardInterrupt: after recording the run as
                ``interrupted`` (its finished results stay stored for a resume).
        """
        values = self.resolve_inputs(inputs or {})
        run_id = run_id or new_run_id()
        folder = self.runs_dir / run_id
        # This run's tally, found by the shared backends' meters in the run's context.
        meter = RunMeter(on_call=on_event)
        record = RunRecord(
            run_id=run_id,
            workflow=str(self.path),
            kind=self.kind,
            status="running",
            inputs=values,
            started_at=time.time(),
        )
        record.write(self.runs_dir)
        store = SQLiteResultStore(folder / "results.sqlite")
        outcome: dict[str, Any] = {}
        team: TeamTrace | None = None
        try:
            runner = RUNNERS[self.kind]
            # Every run keeps its own trace (trace.jsonl beside run.json): the
            # HTML report (``plait runs show ID --html``) is drawn from it.
            with (
                metering(meter),
                tracing.record_run(folder, run_id, {"plait.workflow": str(self.path)}),
            ):
                done = await runner(
                    RunContext(
                        self.spec, self._built, self.runs_dir, values, run_id, store, on_event
                    )
                )
            results = done.results
            outcome = dict(
                status="done" if done.ok else "failed", answer=done.answer, steps=done.steps
            )
            if done.team is not None:
                team = done.team
                outcome["team"] = team.model_dump(mode="json")
            if not done.ok:
                outcome["error"] = done.error or "; ".join(
                    f"{k}: {v}" for k, v in done.steps.items() if v not in ("done",)
                )
        except RunError as e:  # the run failed: the record says why
            outcome = dict(status="failed", error=str(e))
            results = {}
        except BaseException as e:
            # Interrupted (its finished results stay stored for a resume), or a usage
            # error or bug that must surface as itself; either way recorded first.
            if is_control_flow(e):
                outcome = dict(status="interrupted", error="interrupted")
            else:
                outcome = dict(status="failed", error=f"{type(e).__name__}: {e}")
            raise
        finally:
            store.close()
            record = record.model_copy(
                update=dict(outcome, finished_at=time.time(), usage=meter.usage, cost=meter.cost)
            )
            record.write(self.runs_dir)
        return WorkflowResult(
            run_id=run_id,
            ok=record.status == "done",
            answer=record.answer,
            status=record.status,
            error=record.error,
            results=results,
            usage=meter.usage,
            cost=meter.cost,
            run_dir=str(folder),
            team=team,
        )

    def run(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        on_event: Callable[[WorkflowEvent], None] | None = None,
    ) -> WorkflowResult:
        """Blocking :meth:`arun`."""
        return run_sync(
            self.arun(inputs, run_id=run_id, on_event=on_event),
            name="Workflow.run()",
            instead="await workflow.arun()",
        )

    def plan(self, inputs: Mapping[str, Any] | None = None) -> Plan:
        """The static DAG of a ``steps`` workflow (inputs substituted where given).

        Raises:
            ConfigError: the workflow is not of kind ``steps``.
        """
        body = self.spec.workflow
        if not isinstance(body, StepsWorkflow):
            raise ConfigError(
                f"a {self.kind!r} workflow has no static plan; its planner writes one"
            )
        values = {n: s.default for n, s in self.spec.inputs.items()} | dict(inputs or {})
        return steps_plan(body, values)

    async def aclose(self) -> None:
        """Release backends (engines, connections)."""
        await close_backends(self.backends)
