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
from plait._sync import run_sync
from plait.agents import Agent, TeamTrace
from plait.backends import Backend
from plait.completions import Usage
from plait.errors import ConfigError, RunError, is_control_flow
from plait.memory import Memory
from plait.tools import Toolset

from ..dag import Approver, Plan, SQLiteResultStore, run_directory
from ._build import build
from ._build_backends import close_backends
from ._cache import run_cache
from ._checks import ValidatedWorkflow, read_workflow, validate_workflow
from ._inputs import convert_input
from ._kinds import RUNNERS, KindResult, RunContext, WorkflowEvent, steps_plan
from ._mcp_run import connected
from ._metering import RunMeter, metering
from ._runs import Attempt, RunRecord, lock_run, new_run_id, read_run, runs_root
from ._schema import StepsWorkflow

__all__ = [
    "ValidatedWorkflow",
    "Workflow",
    "WorkflowEvent",
    "WorkflowResult",
    "load_workflow",
    "read_workflow",
    "validate_workflow",
]


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
    workflow: str | os.PathLike[str] | ValidatedWorkflow,
    *,
    backends: Mapping[str, Backend] | None = None,
    env: Mapping[str, str] | None = None,
    runs_dir: str | os.PathLike[str] | None = None,
) -> Workflow:
    """Build a workflow file's backends, tools, memory and agents.

    Args:
        workflow: the YAML file (read and validated here), or a
            :class:`ValidatedWorkflow` from :func:`read_workflow` (built as it
            is: the file is not read again).
        backends: backends to use instead of the file's entries of the same name
            (tests pass :class:`~plait.backends.testing.ScriptedBackend` here).
        env: the environment for ``${NAME}`` when reading a file (default:
            ``os.environ``); a validated workflow was read with its own.
        runs_dir: where run folders go (default ``<PLAIT_STATE_DIR>/runs``).

    Raises:
        WorkflowValidationError: the file is invalid (every problem listed).
        ConfigError: something it names cannot be built (an import, a folder),
            or ``env`` was given with a workflow read already.
    """
    if isinstance(workflow, ValidatedWorkflow):
        if env is not None:
            raise ConfigError(
                f"load_workflow: {workflow.path} was read already, with its environment; "
                "pass env= to read_workflow instead"
            )
        validated = workflow
    else:
        validated = read_workflow(workflow, env)
    return Workflow(validated, backends=backends, runs_dir=runs_dir)


class Workflow:
    """A validated workflow with its parts built (models load on first use).

    Args:
        validated: the file, read and validated (:func:`read_workflow`).
        backends: backends to use instead of the file's entries of the same name.
        runs_dir: where run folders go (default ``<PLAIT_STATE_DIR>/runs``).

    Attributes:
        spec: the validated file (:class:`WorkflowSpec`).
        path: the file.
        agents, tools, backends, memory: what the file declares, built (without
            the tools of MCP servers, which each run lists when it starts, and
            without the agents using them, built then; see
            :meth:`connected_tools`).
        redactor: hides the values the file took from ``${NAME}`` references in
            everything a run writes (``run.json``, ``trace.jsonl``) and in the
            errors it raises.
    """

    def __init__(
        self,
        validated: ValidatedWorkflow,
        *,
        backends: Mapping[str, Backend] | None = None,
        runs_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(validated, ValidatedWorkflow):
            raise ConfigError(
                "Workflow takes a ValidatedWorkflow (read_workflow(path)); "
                "load_workflow(path) reads and builds in one call"
            )
        self.spec = validated.spec
        self.path = validated.path
        self.redactor = validated.redactor
        try:
            self._built = build(validated.spec, validated.path.parent, backends, validated.where)
        except Exception as e:  # its message may quote a value from the environment
            self.redactor.error(e)
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
        lists (the planner loop pauses until it answers)
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
        meter = RunMeter(on_call=on_event)
        ledger = self._built.ledger.for_run()
        started = time.time()
        record = RunRecord.started(
            run_id, str(self.path), self.kind, values, earlier, started_at=started
        )
        record.write(self.runs_dir, redactor)
        store = SQLiteResultStore(folder / "results.sqlite")
        done: KindResult | None = None
        status, error = "failed", None
        try:
            # Every run keeps its own trace (trace.jsonl beside run.json): the
            # HTML report (``plait runs show ID --html``) is drawn from it.
            with (
                metering(meter, ledger),
                tracing.record_run(
                    folder, run_id, {"plait.workflow": str(self.path)}, redact=redactor.data
                ),
            ):
                # MCP servers run for the length of the run (one session per run).
                async with (
                    run_cache(self._built.cache, folder),
                    connected(self._built) as built,
                ):
                    run = RunContext(
                        self.spec,
                        built,
                        self.runs_dir,
                        values,
                        run_id,
                        store,
                        meter,
                        ledger,
                        on_event=on_event,
                        approver=approver,
                    )
                    done = await RUNNERS[self.kind](run)
            await store.aclose()  # off the event loop; the finally below is then a no-op
            status, error = ("done", None) if done.ok else ("failed", _failure(done))
        except RunError as e:  # the run failed: the record says why
            error = str(e)
        except BaseException as e:
            # Interrupted (its finished results stay stored for a resume), or a usage
            # error or bug that must surface as itself; either way recorded first.
            done = None
            if is_control_flow(e):
                why = str(e.args[0]) if e.args and isinstance(e.args[0], str) else ""
                status, error = "interrupted", f"interrupted ({why})" if why else "interrupted"
            else:
                error = f"{type(e).__name__}: {e}"
                redactor.error(e)
            raise
        finally:
            store.close()
            attempt = Attempt(
                started_at=started,
                finished_at=time.time(),
                status=status,
                usage=meter.usage,
                cost=meter.cost,
                cost_saved=meter.cost_saved,
                error=error,
            )
            record = record.ended(attempt, _recorded(done))
            record.write(self.runs_dir, redactor)
        return WorkflowResult(
            run_id=run_id,
            ok=record.status == "done",
            answer=record.answer,
            status=record.status,
            error=redactor.text(record.error) if record.error else None,
            results=done.results if done is not None else {},
            usage=attempt.usage,
            cost=attempt.cost,
            cost_saved=attempt.cost_saved,
            run_dir=str(folder),
            team=done.team if done is not None else None,
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
        async with connected(self._built) as built:
            yield built.tools

    async def aclose(self) -> None:
        """Release backends (engines, connections)."""
        await close_backends(self.backends)


def _failure(done: KindResult) -> str:
    """Why a finished run failed: its runner's reason, else each step that did not finish."""
    return done.error or "; ".join(f"{k}: {v}" for k, v in done.steps.items() if v != "done")


def _recorded(done: KindResult | None) -> dict[str, Any]:
    """What ``run.json`` keeps of a kind runner's result (nothing when it did not finish)."""
    if done is None:
        return {}
    return {
        "answer": done.answer,
        "steps": done.steps,
        "untrusted_sources": list(done.untrusted_sources),
        "violations": list(done.violations),
        "team": done.team.model_dump(mode="json") if done.team is not None else None,
    }
