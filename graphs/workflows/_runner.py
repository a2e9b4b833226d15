"""``load_workflow`` and ``Workflow``: a YAML file made runnable.

Each run owns ``.plait/runs/<run_id>/``: ``run.json`` (the record, written when
the run starts and when it ends — also on Ctrl-C) and ``results.sqlite`` (every
finished task's result, stored before its dependants start). Running again with
the same ``run_id`` reuses the stored results, so an interrupted run resumes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from plait import tracing
from plait._sync import run_sync
from plait.agents import Agent, AgentLimits, Supervisor, TeamDecision, TeamPlan, TeamTrace
from plait.backends import Backend
from plait.backends.routing import CostLedger
from plait.completions import Usage
from plait.errors import ConfigError, RunError, WorkflowValidationError, is_control_flow
from plait.memory import Memory
from plait.tools import Toolset

from ..adapters import UsageErrorStop, dag_dispatch, task_runner
from ..compiler import LLMCompiler
from ..dag import EagerExecutor, Plan, SQLiteResultStore, Task, TaskEvent, substitute
from ._build import ModelCall, backend_named, build, close_backends, select_tools
from ._checks import check
from ._inputs import convert_input, with_inputs
from ._runs import RunRecord, new_run_id, runs_root
from ._schema import (
    PlannerWorkflow,
    StepsWorkflow,
    SupervisorWorkflow,
    WorkflowSpec,
)
from ._source import read_source

__all__ = ["Workflow", "WorkflowEvent", "WorkflowResult", "load_workflow", "validate_workflow"]

WorkflowEvent = TaskEvent | ModelCall | TeamDecision
"""What ``on_event`` receives: task events from the executor, each model call's usage,
and (supervisor workflows) each team decision as it is taken."""


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


def validate_workflow(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> WorkflowSpec:
    """Read and validate a workflow file without building anything.

    Raises:
        WorkflowValidationError: every problem found, each with ``file:line:column``.
    """
    source = read_source(path, env)
    spec = check(source) if not source.problems or source.data else None
    if source.problems or spec is None:
        raise WorkflowValidationError(str(path), source.problems)
    return spec


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
    spec = validate_workflow(path, env)
    return Workflow(spec, Path(path), backends=backends, runs_dir=runs_dir)


@dataclass
class _Meter:
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0

    def add(self, call: ModelCall) -> None:
        self.usage = self.usage + call.usage
        self.cost += call.cost


class Workflow:
    """A validated workflow with its parts built (models load on first use).

    Attributes:
        spec: the validated file (:class:`WorkflowSpec`).
        path: the file.
        agents, tools, backends, memory: what the file declares, built.
    """

    def __init__(
        self,
        spec: WorkflowSpec,
        path: Path,
        *,
        backends: Mapping[str, Backend] | None = None,
        runs_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.spec = spec
        self.path = path
        self._built = build(spec, path.parent, backends)
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
        meter = _Meter()

        def on_call(call: ModelCall) -> None:
            meter.add(call)
            if on_event is not None:
                on_event(call)

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
        self._built.listeners.append(on_call)
        try:
            runner = _RUNNERS[self.kind]
            # Every run keeps its own trace (trace.jsonl beside run.json): the
            # HTML report (``plait runs show ID --html``) is drawn from it.
            with tracing.record_run(folder, run_id, {"plait.workflow": str(self.path)}):
                done = await runner(self, values, run_id, store, on_event)
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
            self._built.listeners.remove(on_call)
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
        return _steps_plan(body, values)

    async def aclose(self) -> None:
        """Release backends (engines, connections)."""
        await close_backends(self.backends)


def _steps_plan(body: StepsWorkflow, inputs: Mapping[str, Any]) -> Plan:
    tasks = []
    for step in body.steps:
        if step.agent is not None:
            tool, args = step.agent, {"task": with_inputs(step.input or "", inputs)}
        else:
            tool, args = str(step.tool), with_inputs(step.args, inputs)
        tasks.append(
            Task(
                id=step.id,
                tool=tool,
                args=args,
                depends_on=tuple(step.depends_on),
                timeout_s=step.timeout_s,
                retries=step.retries,
                continue_on_error=step.continue_on_error,
            )
        )
    return Plan(tasks=tuple(tasks))


@dataclass
class _Outcome:
    """What a workflow kind's runner reports: the answer, success, per-step detail."""

    answer: Any
    ok: bool
    results: dict[str, Any]
    steps: dict[str, str]
    error: str | None = None
    team: TeamTrace | None = None


async def _run_steps(
    wf: Workflow,
    inputs: dict[str, Any],
    run_id: str,
    store: SQLiteResultStore,
    on_event: Callable[[WorkflowEvent], None] | None,
) -> _Outcome:
    body = wf.spec.workflow
    assert isinstance(body, StepsWorkflow)
    plan = _steps_plan(body, inputs)
    _, runner = task_runner(wf.tools, wf.agents.values())
    stop = UsageErrorStop()  # a misconfigured step stops the run instead of failing
    executor = EagerExecutor(
        stop.wrap(runner), max_concurrency=body.max_concurrency, store=store, on_event=on_event
    )
    run = await stop.run(executor.run(plan, run_id=run_id))
    results = run.results
    if body.output is not None:
        template = with_inputs(body.output, inputs)
        try:
            answer = substitute(template, results)
        except KeyError:
            answer = None  # a step it names did not finish
    else:
        answer = results.get(body.steps[-1].id)
    steps = {
        i: o.status if o.status == "done" else f"{o.status} ({o.error})"
        for i, o in run.outcomes.items()
    }
    return _Outcome(answer, run.ok, results, steps)


async def _run_planner(
    wf: Workflow,
    inputs: dict[str, Any],
    run_id: str,
    store: SQLiteResultStore,
    on_event: Callable[[WorkflowEvent], None] | None,
) -> _Outcome:
    body = wf.spec.workflow
    assert isinstance(body, PlannerWorkflow)
    tools = Toolset([select_tools(wf._built.entries, name) for name in body.tools])
    specs, runner = task_runner(tools, [wf.agents[name] for name in body.agents])
    stop = UsageErrorStop()
    runner = stop.wrap(runner)
    compiler = LLMCompiler(
        backend_named(wf.backends, body.backend),
        specs,
        runner,
        joiner=backend_named(wf.backends, body.joiner) if body.joiner else None,
        plan_format=body.plan_format,
        max_replans=body.max_replans,
        max_tasks=body.max_tasks,
        executor=EagerExecutor(runner, store=store, on_event=on_event),
        runs_dir=wf.runs_dir,  # the loop's checkpoints go beside run.json
    )
    question = str(with_inputs(body.question, inputs))
    result = await stop.run(compiler.arun(question, run_id=run_id))
    results: dict[str, Any] = {}
    steps: dict[str, str] = {}
    for number, round_ in enumerate(result.rounds, 1):
        for task_id, outcome in round_.run.outcomes.items():
            key = f"{number}.{task_id}"
            steps[key] = outcome.status
            if outcome.status == "done":
                results[key] = outcome.result
    return _Outcome(result.answer, True, results, steps)


async def _run_supervisor(
    wf: Workflow,
    inputs: dict[str, Any],
    run_id: str,
    store: SQLiteResultStore,
    on_event: Callable[[WorkflowEvent], None] | None,
) -> _Outcome:
    body = wf.spec.workflow
    assert isinstance(body, SupervisorWorkflow)
    # The team's own ledger: the file's prices, capped by this workflow's budget.
    ledger = CostLedger(prices=dict(wf._built.ledger.prices), budget=body.budget)
    reviewer = backend_named(wf.backends, body.reviewer) if body.reviewer else None
    limits = body.worker_limits
    team = Supervisor(
        body.name,
        backend_named(wf.backends, body.backend),
        workers=[backend_named(wf.backends, w) for w in body.workers],
        brief=str(with_inputs(body.brief, inputs)),
        agents=[wf.agents[name] for name in body.agents],
        reviewer=reviewer,
        ledger=ledger,
        dispatch=dag_dispatch(max_concurrency=body.max_concurrency, store=store, on_event=on_event),
        max_attempts=body.max_attempts,
        max_depth=body.max_depth,
        worker_limits=AgentLimits(
            max_steps=limits.max_steps,
            max_turn_tokens=limits.max_turn_tokens,
            timeout_s=limits.timeout_s,
        ),
        aggregate=body.aggregate,
        temperature=body.temperature,
        on_decision=on_event,
    )
    plan = _team_plan(body, inputs) if body.plan is not None else None
    result = await team.arun(str(with_inputs(body.goal, inputs)), plan=plan)
    steps = {
        w.subtask: w.status if w.status == "accepted" else f"{w.status} ({w.output[:200]})"
        for w in result.trace.workers
    }
    error = f"{result.stop_reason}: {result.reason}" if not result.ok else None
    return _Outcome(
        result.output, result.ok, result.results(), steps, error=error, team=result.trace
    )


def _team_plan(body: SupervisorWorkflow, inputs: Mapping[str, Any]) -> TeamPlan:
    """The file's fixed plan with inputs substituted, as the Supervisor's TeamPlan."""
    try:
        return TeamPlan.model_validate(
            {
                "subtasks": [
                    dict(s.model_dump(), task=str(with_inputs(s.task, inputs)))
                    for s in body.plan or ()
                ]
            }
        )
    except ValueError as e:  # pydantic's ValidationError; checks catch most of it earlier
        raise ConfigError(f"the supervisor's plan is not a valid team plan: {e}") from e


# The extension point for new workflow kinds: one coroutine per kind, returning
# an _Outcome (answer, ok, results, step statuses, and optional detail).
_RUNNERS: dict[
    str,
    Callable[
        [Workflow, dict[str, Any], str, SQLiteResultStore, Callable[[WorkflowEvent], None] | None],
        Awaitable[_Outcome],
    ],
] = {"steps": _run_steps, "planner": _run_planner, "supervisor": _run_supervisor}
