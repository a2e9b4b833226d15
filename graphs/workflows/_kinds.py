"""The workflow kinds' runs: ``steps`` (a fixed DAG), ``planner`` (LLMCompiler) and
``supervisor`` (a team). Each gets the run's :class:`RunContext` and reports an
:class:`KindResult`; ``Workflow.arun`` records it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.agents import (
    Agent,
    AgentLimits,
    Runnable,
    Supervisor,
    TeamDecision,
    TeamPlan,
    TeamTrace,
)
from plait.backends.routing import CostLedger
from plait.chat import ToolSpec
from plait.errors import ConfigError
from plait.provenance import untrusted
from plait.tools import Toolset

from ..adapters import dag_dispatch, task_runner
from ..compiler import LLMCompiler
from ..dag import (
    Approval,
    Approver,
    EagerExecutor,
    Plan,
    RayTaskRunner,
    SQLiteResultStore,
    Task,
    TaskEvent,
    TaskRunner,
    find_references,
    substitute,
)
from ._build import Built
from ._build_backends import backend_named
from ._build_tools import select_tools, tool_selection
from ._inputs import with_inputs
from ._metering import ModelCall, RunMeter, count_calls, metering
from ._modules import WORKFLOW_PACKAGE_PREFIX
from ._placement import driver_tasks
from ._schema import (
    ExecutorChoice,
    PlannerWorkflow,
    RayExecutorSpec,
    StepsWorkflow,
    SupervisorWorkflow,
    WorkflowSpec,
)

__all__ = ["RUNNERS", "KindResult", "RunContext", "WorkflowEvent", "steps_plan"]

WorkflowEvent = TaskEvent | ModelCall | TeamDecision
"""What ``on_event`` receives: task events from the executor, each model call's usage,
and (supervisor workflows) each team decision as it is taken."""


@dataclass(frozen=True)
class RunContext:
    """One run of a workflow: everything its kind's runner works with, passed explicitly.

    Made by ``Workflow.arun`` for each run (and each resume); nothing here is
    shared with another run. The meter and ledger are also put in a context
    variable for the run's length (``_metering.metering``), because the shared
    backends and routers below this layer must find them.

    Attributes:
        spec: the validated file.
        built: its backends, tools, memory and agents (shared by every run),
            with the run's MCP servers' tools and the agents using them.
        runs_dir: where run folders go.
        inputs: the run's resolved inputs.
        run_id: the run's id.
        store: the run's result store (finished tasks, for resuming): the one
            store of the run, ``results.sqlite`` in its folder.
        meter: the run's usage, cost and model-call events.
        ledger: the run's own router ledger (the file's router budgets, nothing
            spent yet).
        on_event: the caller's event callback.
        approver: decides on steps flagged ``requires_approval``, a planner's
            tasks calling a tool its ``requires_approval`` lists, and calls a
            policy holds for approval (without one they are rejected).
    """

    spec: WorkflowSpec
    built: Built
    runs_dir: Path
    inputs: dict[str, Any]
    run_id: str
    store: SQLiteResultStore
    meter: RunMeter
    ledger: CostLedger
    on_event: Callable[[WorkflowEvent], None] | None = None
    approver: Approver | None = None


def steps_plan(body: StepsWorkflow, inputs: Mapping[str, Any]) -> Plan:
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
                requires_approval=step.requires_approval,
            )
        )
    return Plan(tasks=tuple(tasks))


def _ship_workflow_modules(tools: Toolset) -> None:
    """Have Ray pickle the workflow folder's own tool modules by value.

    They are imported under a private package name (see ``_modules``) that a
    worker cannot import, so their functions travel as code, not as references.
    """
    from ray import cloudpickle

    for tool_ in tools:
        module = sys.modules.get(getattr(tool_.fn, "__module__", "") or "")
        if module is not None and module.__name__.startswith(WORKFLOW_PACKAGE_PREFIX):
            cloudpickle.register_pickle_by_value(module)


class _Answered:
    """A worker's answer to one task, with the model calls it made on the way."""

    def __init__(self, value: Any, calls: list[ModelCall], error: Exception | None) -> None:
        self.value = value
        self.calls = calls
        self.error = error


def _metered(runner: TaskRunner) -> TaskRunner:
    """``runner`` as a worker runs it: its model calls are collected for the driver,
    whose run meter cannot be reached from the worker."""

    async def run(task: Task, args: dict[str, Any]) -> Any:
        calls: list[ModelCall] = []
        with metering(RunMeter(on_call=calls.append)):
            try:
                value = await runner(task, args)
            except Exception as e:  # raised again by the driver, once the calls are counted
                return _Answered(None, calls, e)
        return _Answered(value, calls, None)

    return run


def placed(
    run: RunContext,
    executor: ExecutorChoice,
    tools: Toolset,
    agents: Iterable[Runnable],
) -> tuple[list[ToolSpec], TaskRunner]:
    """The specs a planner is shown and the runner of a run's tasks, placed by ``executor``.

    One decision for every kind that runs a plan: ``local`` runs each task
    here; ``ray`` sends the tasks that can travel (tools, and agents on
    backends that travel) to Ray workers, whose model calls are counted on this
    run's meter (usage, cost, ``on_event``) and whose spans reach the run's
    trace, while the others keep running here.
    """
    specs, runner = task_runner(tools, agents)
    if executor == "local":
        return specs, runner
    on_driver = driver_tasks(run.spec, run.built, agents)
    ray_spec = executor if isinstance(executor, RayExecutorSpec) else RayExecutorSpec(kind="ray")
    travelling = Toolset([t for t in tools if t.name not in on_driver])
    crew = [a for a in agents if a.name not in on_driver and isinstance(a, Agent)]
    _ship_workflow_modules(Toolset([*travelling, *(t for a in crew for t in a.tools)]))
    _, remote_calls = task_runner(travelling, crew)
    remote = RayTaskRunner(
        _metered(remote_calls), address=ray_spec.address, num_cpus=ray_spec.num_cpus
    )
    away = set(travelling.names) | {a.name for a in crew}

    async def run_task(task: Task, args: dict[str, Any]) -> Any:
        if task.tool not in away:
            return await runner(task, args)
        answer = await remote(task, args)
        if not isinstance(answer, _Answered):
            return answer
        count_calls(answer.calls)
        if answer.error is not None:
            raise answer.error
        return answer.value

    return specs, run_task


def executor_for(run: RunContext, runner: TaskRunner, **settings: Any) -> EagerExecutor:
    """The run's executor: what every kind's plan shares is decided here, once.

    Its store is the run's store, its events go to ``on_event``, the file's
    policies are checked before each task, and a usage error (a misconfigured
    step) stops the run instead of failing one task; ``settings`` adds what a
    kind decides itself (its concurrency, its approver).
    """
    return EagerExecutor(
        runner,
        store=run.store,
        on_event=run.on_event,
        policies=run.built.policies,
        stop_on_usage_error=True,
        **settings,
    )


@dataclass
class KindResult:
    """What a workflow kind's runner reports: the answer, success, per-step detail.

    ``Workflow.arun`` copies it into the run's record once (``run.json``); the
    caller's :class:`WorkflowResult` is read from that record.

    Attributes:
        answer: the workflow's answer.
        ok: every step succeeded.
        results: step/task id -> result, for the tasks that finished.
        steps: step/task id -> status, with the error when it did not finish.
        error: why the run failed, when the steps do not say.
        team: a supervisor run's team trace.
        untrusted_sources: the untrusted sources the answer rests on.
        violations: the calls a policy refused, one line each.
    """

    answer: Any
    ok: bool
    results: dict[str, Any]
    steps: dict[str, str]
    error: str | None = None
    team: TeamTrace | None = None
    untrusted_sources: tuple[str, ...] = ()
    violations: tuple[str, ...] = ()


async def _run_steps(run: RunContext) -> KindResult:
    body = run.spec.workflow
    assert isinstance(body, StepsWorkflow)
    plan = steps_plan(body, run.inputs)
    tools = Toolset([run.built.tools, *run.built.aliases.values()])
    agents = list(run.built.runnables.values())
    _, runner = placed(run, body.executor, tools, agents)
    executor = executor_for(
        run, runner, max_concurrency=body.max_concurrency, approver=run.approver
    )
    done = await executor.run(plan, run_id=run.run_id)
    results = done.results
    if body.output is not None:
        template = with_inputs(body.output, run.inputs)
        used = find_references(template) & done.outcomes.keys()
        try:
            answer = substitute(template, results)
        except KeyError:
            answer = None  # a step it names did not finish
    else:
        used = {body.steps[-1].id} & done.results.keys()
        answer = results.get(body.steps[-1].id)
    steps = {
        i: o.status if o.status == "done" else f"{o.status} ({o.error})"
        for i, o in done.outcomes.items()
    }
    return KindResult(
        answer,
        done.ok,
        results,
        steps,
        untrusted_sources=tuple(str(s) for s in done.untrusted_sources(used)),
        violations=tuple(v.message for v in done.violations),
    )


async def _run_planner(run: RunContext) -> KindResult:
    body = run.spec.workflow
    assert isinstance(body, PlannerWorkflow)
    tools = Toolset(
        [select_tools(run.built.entries, name, run.built.aliases) for name in body.tools]
    )
    agents = [run.built.runnables[name] for name in body.agents]
    specs, runner = placed(run, body.executor, tools, agents)
    executor = executor_for(run, runner)
    # An entry named in requires_approval flags each of its tools.
    flagged = {
        t.name
        for name in body.requires_approval
        for t in select_tools(run.built.entries, name, run.built.aliases)
    }
    compiler = LLMCompiler(
        backend_named(run.built.backends, body.backend),
        specs,
        joiner=backend_named(run.built.backends, body.joiner) if body.joiner else None,
        plan_format=body.plan_format,
        max_replans=body.max_replans,
        max_tasks=body.max_tasks,
        executor=executor,
        runs_dir=run.runs_dir,
        mode=body.mode,
        tool_selection=tool_selection(body.tool_selection),
        tool_sampling=body.tool_sampling,
        requires_approval=flagged,
    )
    question = str(with_inputs(body.question, run.inputs))
    # The executor's store is the run's (results.sqlite): it holds the loop's
    # round records too.
    result = await compiler.arun(question, run_id=run.run_id)
    # The loop paused on flagged or policy-held tasks: the reviewer decides,
    # and the loop goes on from the round's record.
    while result.awaiting:
        decisions = await _reviewed(run.approver, result.awaiting)
        result = await compiler.aresume(run.run_id, decisions)
    results: dict[str, Any] = {}
    steps: dict[str, str] = {}
    for number, round_ in enumerate(result.rounds, 1):
        for task_id, outcome in round_.run.outcomes.items():
            key = f"{number}.{task_id}"
            steps[key] = outcome.status
            if outcome.status == "done":
                results[key] = outcome.result
    return KindResult(
        result.answer,
        True,
        results,
        steps,
        untrusted_sources=tuple(str(s) for s in result.untrusted_sources),
        violations=tuple(v.message for r in result.rounds for v in r.run.violations),
    )


async def _reviewed(
    approver: Approver | None, awaiting: tuple[dict[str, Any], ...]
) -> dict[str, Approval]:
    """The reviewer's decision on each task a paused planner run asks about.

    Every task of the pause is asked about at once (a reviewer sees them
    together). Without a reviewer each is rejected, as a steps workflow's
    flagged step is.
    """
    asked = [item for payload in awaiting for item in payload.get("tasks", ())]
    if approver is None:
        refused = Approval(action="reject", reason="no approver was configured")
        return {item["task_id"]: refused for item in asked}

    async def decide(item: dict[str, Any]) -> Approval:
        # Built without validation: resolved arguments are data, and a text such
        # as "costs $2" must not be read as a reference to task 2.
        task = Task.model_construct(
            id=item["task_id"], tool=item["tool"], args=item["args"], requires_approval=True
        )
        answer = await approver(task, dict(item["args"]))
        if isinstance(answer, Approval):
            return answer
        return Approval(action="approve" if answer else "reject")

    async with asyncio.TaskGroup() as group:
        asking = {item["task_id"]: group.create_task(decide(item)) for item in asked}
    return {task_id: asked_.result() for task_id, asked_ in asking.items()}


async def _run_supervisor(run: RunContext) -> KindResult:
    body = run.spec.workflow
    assert isinstance(body, SupervisorWorkflow)
    # The team's own ledger: the file's prices, capped by this workflow's budget.
    ledger = CostLedger(prices=dict(run.built.ledger.prices), budget=body.budget)
    reviewer = backend_named(run.built.backends, body.reviewer) if body.reviewer else None
    limits = body.worker_limits
    team = Supervisor(
        body.name,
        backend_named(run.built.backends, body.backend),
        workers=[backend_named(run.built.backends, w) for w in body.workers],
        brief=str(with_inputs(body.brief, run.inputs)),
        agents=[run.built.runnables[name] for name in body.agents],
        reviewer=reviewer,
        ledger=ledger,
        dispatch=dag_dispatch(
            max_concurrency=body.max_concurrency, store=run.store, on_event=run.on_event
        ),
        max_attempts=body.max_attempts,
        max_depth=body.max_depth,
        worker_limits=AgentLimits(
            max_steps=limits.max_steps,
            max_turn_tokens=limits.max_turn_tokens,
            timeout_s=limits.timeout_s,
        ),
        aggregate=body.aggregate,
        temperature=body.temperature,
        on_decision=run.on_event,
        policies=run.built.policies,
        mode=body.mode,
    )
    plan = _team_plan(body, run.inputs) if body.plan is not None else None
    result = await team.arun(str(with_inputs(body.goal, run.inputs)), plan=plan)
    steps = {
        w.subtask: w.status if w.status == "accepted" else f"{w.status} ({w.output[:200]})"
        for w in result.trace.workers
    }
    error = f"{result.stop_reason}: {result.reason}" if not result.ok else None
    return KindResult(
        result.output,
        result.ok,
        result.results(),
        steps,
        error=error,
        team=result.trace,
        untrusted_sources=tuple(str(s) for s in untrusted(result.sources)),
        violations=tuple(v.message for v in result.violations),
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
# a KindResult (answer, ok, results, step statuses, and optional detail).
RUNNERS: dict[str, Callable[[RunContext], Awaitable[KindResult]]] = {
    "steps": _run_steps,
    "planner": _run_planner,
    "supervisor": _run_supervisor,
}
