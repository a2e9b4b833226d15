"""``load_workflow`` and ``Workflow``: a YAML file made runnable.

Each run owns ``.plait/runs/<run_id>/``: ``run.json`` (the record, written when
the run starts and when it ends — also on Ctrl-C) and ``results.sqlite`` (every
finished task's result, stored before its dependants start). Running again with
the same ``run_id`` reuses the stored results, so an interrupted run resumes.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from plait import tracing
from plait._secrets import NO_SECRETS, Redactor
from plait._sync import run_sync
from plait.agents import Agent, TeamTrace
from plait.backends import Backend
from plait.completions import Usage
from plait.errors import ConfigError, RunError, is_control_flow
from plait.memory import Memory
from plait.tools import Toolset

from ..dag import Approver, Plan, SQLiteResultStore, run_directory
from ._build import build, close_backends, connected
from ._cache import run_cache
from ._checks import validate_workflow, validated
from ._inputs import convert_input
from ._kinds import RUNNERS, RunContext, WorkflowEvent, steps_plan
from ._metering import RunMeter, metering
from ._runs import Attempt, RunRecord, lock_run, new_run_id, read_run, runs_root
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
        usage: tokens over every model call (``usage.cache_hits``: calls the
            model-call cache answered).
        cost: cost over every priced model call.
        cost_saved: what the calls the cache answered would have cost.
        run_dir: the run's folder.
        team: a supervisor run's team trace (every decision, each worker's report).
        untrusted_sources: the untrusted sources the answer rests on (``web``,
            ``tool:http_get``, ``memory:notes@low``, ...).
        violations: the calls a policy refused, one message each.
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
    cost_saved: float = 0.0
    run_dir: str = ""
    team: TeamTrace | None = None
    untrusted_sources: list[str] = Field(default_factory=list)
    violations: list[str] = Field(default_factory=list)


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
    return Workflow(
        spec,
        Path(path),
        backends=backends,
        runs_dir=runs_dir,
        redactor=source.redactor,
        where=source.where,
    )


class Workflow:
    """A validated workflow with its parts built (models load on first use).

    Attributes:
        spec: the validated file (:class:`WorkflowSpec`).
        path: the file.
        agents, tools, backends, memory: what the file declares, built (without
            the tools of MCP servers, which each run lists when it starts; see
            :meth:`connected_tools`).
        where: (argument) the position of a part of the file, for messages
            (``load_workflow`` passes the file's own).
        redactor: hides the values the file took from ``${NAME}`` references in
            everything a run writes (``run.json``, ``trace.jsonl``) and in the
            errors it raises.
    """

    def __init__(
        self,
        spec: WorkflowSpec,
        path: Path,
        *,
        backends: Mapping[str, Backend] | None = None,
        runs_dir: str | os.PathLike[str] | None = None,
        redactor: Redactor = NO_SECRETS,
        where: Callable[[tuple[str | int, ...]], object] | None = None,
    ) -> None:
        self.spec = spec
        self.path = path
        self.redactor = redactor
        try:
            self._built = build(spec, path.parent, backends, where)
        except Exception as e:  # its message may quote a value from the environment
            redactor.error(e)
            raise
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
            ConfigError: an unknown input, a missing required one, or a bad value
                (every problem, in one message).
        """
        values, problems = self._inputs(given)
        if problems:
            raise ConfigError("; ".join(problems.values()))
        return values

    def input_problems(self, given: Mapping[str, Any]) -> dict[str, str]:
        """What is wrong with ``given`` as this workflow's inputs: input name -> problem."""
        return self._inputs(given)[1]

    def _inputs(self, given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        declared = self.spec.inputs
        known = ", ".join(sorted(declared)) or "none"
        problems = {
            name: f"unknown input {name!r}; this workflow takes: {known}"
            for name in sorted(set(given) - set(declared))
        }
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in given:
                try:
                    values[name] = convert_input(name, given[name], spec)
                except ConfigError as e:
                    problems[name] = str(e)
            elif spec.default is not None:
                values[name] = spec.default
            else:
                problems[name] = f"input {name!r} is required (pass --input {name}=...)"
        return values, problems

    async def arun(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        on_event: Callable[[WorkflowEvent], None] | None = None,
        approver: Approver | None = None,
    ) -> WorkflowResult:
        """Run the workflow; a run id that exists already resumes that run.

        ``approver`` decides on steps flagged ``requires_approval`` (a ``steps``
        workflow), on a planner's tasks calling a tool its ``requires_approval``
        lists (the planner loop pauses, a LangGraph interrupt, until it answers)
        and on calls a policy holds; without one such a task is rejected.

        A run-time failure (:class:`~plait.errors.RunError`) ends the run as
        ``failed`` in its result; anything else is recorded and raised. The run
        holds its folder's lock (``run.lock``) while it runs. A resume keeps the
        earlier attempts (``RunRecord.attempts``); usage and cost in the result
        are this attempt's, in the record the totals. Errors it raises and
        everything it writes have the workflow's secrets hidden.

        Raises:
            ConfigError: bad inputs (nothing has run); the run is running in another
                process (or task); its record is unreadable; or a misconfiguration
                found while running (the run is recorded as ``failed``).
            PlanError: a plan given in the file turned out invalid while running.
            asyncio.CancelledError, KeyboardInterrupt: after recording the run as
                ``interrupted`` (its finished results stay stored for a resume).
        """
        values = self.resolve_inputs(inputs or {})
        run_id = run_id or new_run_id()
        folder = run_directory(run_id, self.runs_dir)
        with lock_run(folder, run_id):  # a second process running this id refuses here
            earlier: list[Attempt] = []
            if (folder / "run.json").exists():  # a resume: keep what earlier attempts did
                earlier = read_run(run_id, self.runs_dir).earlier_attempts()
            return await self._attempt(values, run_id, folder, earlier, on_event, approver)

    async def _attempt(
        self,
        values: dict[str, Any],
        run_id: str,
        folder: Path,
        earlier: list[Attempt],
        on_event: Callable[[WorkflowEvent], None] | None,
        approver: Approver | None,
    ) -> WorkflowResult:
        redactor = self.redactor
        # This run's tally, found by the shared backends' meters in the run's context.
        meter = RunMeter(on_call=on_event)
        started = time.time()
        before_usage = sum((a.usage for a in earlier), Usage())
        before_cost = sum(a.cost for a in earlier)
        before_saved = sum(a.cost_saved for a in earlier)
        record = RunRecord(
            run_id=run_id,
            workflow=str(self.path),
            kind=self.kind,
            status="running",
            inputs=values,
            started_at=earlier[0].started_at if earlier else started,
            usage=before_usage,
            cost=before_cost,
            cost_saved=before_saved,
            attempts=[*earlier, Attempt(started_at=started, status="running")],
        )
        record.write(self.runs_dir, redactor)
        store = SQLiteResultStore(folder / "results.sqlite")
        outcome: dict[str, Any] = {}
        team: TeamTrace | None = None
        try:
            runner = RUNNERS[self.kind]
            # Every run keeps its own trace (trace.jsonl beside run.json): the
            # HTML report (``plait runs show ID --html``) is drawn from it.
            with (
                metering(meter),
                tracing.record_run(
                    folder, run_id, {"plait.workflow": str(self.path)}, redact=redactor.data
                ),
            ):
                # MCP servers run for the length of the run (one session per run).
                async with (
                    run_cache(self._built.cache, folder),
                    connected(self.spec, self._built) as built,
                ):
                    done = await runner(
                        RunContext(
                            self.spec,
                            built,
                            self.runs_dir,
                            values,
                            run_id,
                            store,
                            on_event,
                            approver,
                        )
                    )
            await store.aclose()  # off the event loop; the finally below is then a no-op
            results = done.results
            outcome = dict(
                status="done" if done.ok else "failed",
                answer=done.answer,
                steps=done.steps,
                untrusted_sources=list(done.untrusted_sources),
                violations=list(done.violations),
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
                why = str(e.args[0]) if e.args and isinstance(e.args[0], str) else ""
                outcome = dict(
                    status="interrupted", error=f"interrupted ({why})" if why else "interrupted"
                )
            else:
                outcome = dict(status="failed", error=f"{type(e).__name__}: {e}")
                redactor.error(e)
            raise
        finally:
            store.close()
            attempt = Attempt(
                started_at=started,
                finished_at=time.time(),
                status=outcome.get("status", "failed"),
                usage=meter.usage,
                cost=meter.cost,
                cost_saved=meter.cost_saved,
                error=outcome.get("error"),
            )
            record = record.model_copy(
                update=dict(
                    outcome,
                    finished_at=attempt.finished_at,
                    usage=before_usage + meter.usage,
                    cost=before_cost + meter.cost,
                    cost_saved=before_saved + meter.cost_saved,
                    attempts=[*earlier, attempt],
                )
            )
            record.write(self.runs_dir, redactor)
        return WorkflowResult(
            run_id=run_id,
            ok=record.status == "done",
            answer=record.answer,
            status=record.status,
            error=redactor.text(record.error) if record.error else None,
            results=results,
            usage=meter.usage,
            cost=meter.cost,
            cost_saved=meter.cost_saved,
            run_dir=str(folder),
            team=team,
            untrusted_sources=record.untrusted_sources,
            violations=record.violations,
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

    @asynccontextmanager
    async def connected_tools(self) -> AsyncIterator[Toolset]:
        """Every tool the file declares, MCP servers' tools included, while the block runs.

        The MCP servers start on entering and stop on leaving (runs of the
        workflow open sessions of their own).

        Raises:
            ToolError: an MCP server could not be started.
        """
        async with connected(self.spec, self._built) as built:
            yield built.tools

    async def aclose(self) -> None:
        """Release backends (engines, connections)."""
        await close_backends(self.backends)
