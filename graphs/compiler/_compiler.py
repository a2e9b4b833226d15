"""LLMCompiler: plan tool calls as a DAG, run them eagerly, join or replan.

The outer loop (plan and execute -> join -> maybe replan) is a LangGraph graph,
so it can be used as a subgraph, streamed and checkpointed. Task scheduling
inside a round is the eager executor's, never LangGraph's supersteps.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict

from plait import tracing
from plait._span_attributes import chat_attributes, response_attributes, usage_attributes
from plait._sync import run_sync
from plait.agents import check_tool_sampling, resolve_tool_sampling, vote_attributes
from plait.backends import Backend
from plait.chat import ChatRequest, ToolSpec
from plait.completions import Completion, Usage
from plait.errors import ConfigError, ModelOutputError, PlanError
from plait.memory import default_embedder
from plait.policies import Policy, PolicySet
from plait.provenance import USER, Source, untrusted
from plait.tools import SelectionDecision, ToolSelection, ToolSelector, default_selection

from ..dag import (
    Approval,
    EagerExecutor,
    MemoryResultStore,
    Plan,
    RayExecutor,
    RunResult,
    SQLiteResultStore,
    Task,
    TaskRunner,
    parse_plan_stream,
    run_directory,
)
from ._approval import ApprovalGate
from ._plan_vote import voted_plan
from ._prompts import (
    decision,
    joiner_request,
    model_plan,
    parameter_names,
    planner_request,
    without_repeats,
)

__all__ = ["CompilerMode", "CompilerResult", "LLMCompiler", "Round"]

CompilerMode = Literal["default", "plan_then_execute"]
"""How far untrusted results may steer: ``default`` shows every result to the
joiner and the replanner; ``plan_then_execute`` shows them only trusted ones."""

# A reference to a task in the joiner's answer ("$2"), in plan-then-execute mode.
_ANSWER_REFERENCE = re.compile(r"\$([1-9][0-9]*)\b")


class Round(BaseModel):
    """One plan-execute-join round."""

    model_config = ConfigDict(frozen=True)

    plan: Plan
    run: RunResult
    action: Literal["finish", "replan"]
    answer: str
    usage: Usage
    sources: frozenset[Source] = frozenset()
    template: str | None = None
    selection: SelectionDecision | None = None


class CompilerResult(BaseModel):
    """The final answer and every round that led to it.

    Attributes:
        answer: the joiner's last answer ("" while the first round is paused).
        finished: the joiner chose to finish.
        rounds: every completed round.
        run_id: continue a paused run with :meth:`LLMCompiler.aresume`.
        awaiting: when the run is paused for approval, the interrupt payloads
            (each lists the flagged tasks with their resolved arguments).

    A :class:`Round`'s ``sources`` are what its answer rests on: the question
    and every result the joiner read or placed in the answer; ``template`` is
    the joiner's own text before ``$n`` references were filled in
    (plan-then-execute mode).
    """

    model_config = ConfigDict(frozen=True)

    answer: str
    finished: bool
    rounds: tuple[Round, ...]
    run_id: str = ""
    awaiting: tuple[dict[str, Any], ...] = ()

    @property
    def usage(self) -> Usage:
        return sum((r.usage for r in self.rounds), Usage())

    @property
    def sources(self) -> frozenset[Source]:
        """What the final answer rests on."""
        return self.rounds[-1].sources if self.rounds else frozenset()

    @property
    def untrusted_sources(self) -> list[Source]:
        """The untrusted sources that contributed to the final answer."""
        return untrusted(self.sources)


class _State(TypedDict, total=False):
    question: str
    run_id: str
    rounds: Annotated[list[dict[str, Any]], operator.add]


class LLMCompiler:
    """Answers a question by planning tool calls, running them in parallel, and joining.

    Args:
        planner: the backend that writes plans.
        tools: what the planner may call.
        runner: runs one task (see :data:`plait.graphs.TaskRunner`).
        joiner: the backend that answers or asks for a new plan (default: planner).
        plan_format: ``"json"`` (schema-constrained, always well-formed; best for
            small local models) or ``"text"`` (LLMCompiler's numbered format,
            executed while it streams).
        max_replans: new plans allowed after the first.
        max_tasks: most tasks in one plan (JSON format).
        executor: the executor to run plans with: an ``EagerExecutor`` (or
            subclass), ``"local"`` (the default) or ``"ray"`` (a :class:`RayExecutor`
            on the Ray cluster this process is connected to, or a new local one).
        runs_dir: where durable runs live, one folder per run id (default:
            ``<state_dir>/runs``, i.e. ``.plait/runs``).
        requires_approval: tools whose tasks wait for a reviewer's decision
            (a LangGraph interrupt; the run pauses until it is resumed).
        policies: which sources may reach which tool, checked by the executor
            before each task (and each tool call of an agent task) runs.
        mode: ``"plan_then_execute"`` keeps untrusted results away from every
            control decision: the joiner and the replanner see them withheld
            (they may only place one in the answer, as ``$n``), so a replan is
            written from trusted inputs only. ``"default"`` shows them all; a
            replan written after reading them carries their sources, and
            policies treat its literal arguments accordingly.
        tool_selection: which tools the planner is shown for a question:
            ``"model"`` (all), ``"embedding"`` (the embedder fixes one tool when
            it leads by the margin, else shortlists), ``"hybrid"`` (the embedder
            shortlists ``k``; never fixed, since a plan often needs several
            tools), or a :class:`~plait.tools.ToolSelection`. ``None``:
            ``hybrid`` when the planner has no native tool calls (a small local
            model), else ``model``. Each round records its decision.
        tool_sampling: JSON plans drawn per round: k > 1 asks for k plans at
            once and keeps the one their vote picks (equal plans counted
            together, ties to the plan whose arguments the question states;
            ``plait.tool_sampling.*`` on the ``plait.plan`` span). ``None``: the
            planner backend's default, as for agents.
    """

    def __init__(
        self,
        planner: Backend,
        tools: Sequence[ToolSpec],
        runner: TaskRunner,
        *,
        joiner: Backend | None = None,
        plan_format: Literal["json", "text"] = "json",
        max_replans: int = 2,
        max_tasks: int = 8,
        executor: EagerExecutor | Literal["local", "ray"] | None = None,
        runs_dir: str | Path | None = None,
        requires_approval: Collection[str] = (),
        policies: PolicySet | Iterable[Policy] | None = None,
        mode: CompilerMode = "default",
        tool_selection: ToolSelection | str | None = None,
        tool_sampling: int | None = None,
    ) -> None:
        if mode not in ("default", "plan_then_execute"):
            raise ConfigError(f"mode must be 'default' or 'plan_then_execute', got {mode!r}")
        self.mode: CompilerMode = mode
        self.planner = planner
        self.joiner = joiner or planner
        self.tools = {t.name: t for t in tools}
        self.plan_format = plan_format
        self.max_replans = max_replans
        self.max_tasks = max_tasks
        if executor == "ray":
            executor = RayExecutor(runner)
        elif executor is None or executor == "local":
            executor = EagerExecutor(runner)
        elif not isinstance(executor, EagerExecutor):
            raise ConfigError(
                f"executor must be 'local', 'ray' or an EagerExecutor, got {executor!r}"
            )
        if policies is not None:
            executor = executor.with_policies(policies)
        self.executor: EagerExecutor = executor
        self._runs_dir = None if runs_dir is None else Path(runs_dir)
        unknown = sorted(set(requires_approval) - set(self.tools))
        if unknown:
            raise PlanError(
                f"requires_approval names {', '.join(unknown)}, which the planner cannot call"
                f" (tools: {', '.join(self.tools)})"
            )
        self.requires_approval = frozenset(requires_approval)
        self.tool_selection = (
            ToolSelection.of(tool_selection) if tool_selection is not None else None
        )
        self.tool_sampling = check_tool_sampling(tool_sampling, "LLMCompiler")
        self._memory_saver: Any = None  # checkpoints of runs without a run id
        self._memory_runs: set[str] = set()

    def graph(self, checkpointer: Any = None) -> Any:
        """The loop as a compiled LangGraph graph over ``{"question": ..., "run_id": ...}``.

        Give a checkpointer (e.g. LangGraph's ``InMemorySaver`` or
        ``AsyncSqliteSaver``) for approval interrupts and resumable runs; invoke
        with ``{"configurable": {"thread_id": run_id}}``. Task results persist
        in this compiler's executor store, keyed by the run id.
        """
        return self._graph(self.executor, checkpointer)

    def _graph(self, executor: EagerExecutor, checkpointer: Any) -> Any:
        from langgraph.graph import END, START, StateGraph

        async def plan_and_execute(state: _State) -> dict[str, Any]:
            return await self._plan_and_execute(state, executor)

        builder = StateGraph(_State)
        builder.add_node("plan_and_execute", plan_and_execute)
        builder.add_edge(START, "plan_and_execute")
        builder.add_conditional_edges(
            "plan_and_execute", self._next, {"replan": "plan_and_execute", "end": END}
        )
        return builder.compile(checkpointer=checkpointer)

    def run_dir(self, run_id: str) -> Path:
        """The folder of a durable run: ``checkpoints.sqlite`` and ``results.sqlite``."""
        return run_directory(run_id, self._runs_dir)

    async def arun(self, question: str, *, run_id: str | None = None) -> CompilerResult:
        """Answer ``question``; see :class:`CompilerResult`.

        With a ``run_id``, the run is durable: the outer loop is checkpointed
        in ``<runs_dir>/<run_id>/checkpoints.sqlite`` and task results are
        stored beside it in ``results.sqlite``. Calling again with the same id
        after a crash continues where the run stopped: finished rounds are not
        planned again and finished tasks do not run again; a finished run
        returns its result. Without one, the run lives in memory.

        The run pauses (``awaiting`` set, ``finished`` false) when a task flagged
        ``requires_approval`` is reached; continue it with :meth:`aresume`.
        """
        if run_id is None:
            run_id = uuid.uuid4().hex[:12]
            return await self._invoke(
                run_id, {"question": question, "run_id": run_id, "rounds": []}, durable=False
            )
        return await self._invoke(
            run_id, {"question": question, "run_id": run_id, "rounds": []}, durable=True
        )

    async def aresume(self, run_id: str, answer: Any) -> CompilerResult:
        """Continue a run paused for approval with the reviewer's ``answer``.

        ``answer`` is ``True``/``"approve"``, ``False``/``"reject"``, a dict like
        ``{"action": "reject", "reason": "..."}`` or ``{"action": "edit", "args":
        {...}}`` (see :class:`plait.graphs.Approval`), applying to every task
        asked about, or a mapping from task id to such a decision.
        """
        from langgraph.types import Command

        durable = run_id not in self._memory_runs
        return await self._invoke(run_id, Command(resume=answer), durable=durable)

    def run(self, question: str, *, run_id: str | None = None) -> CompilerResult:
        """Blocking :meth:`arun`."""
        return run_sync(
            self.arun(question, run_id=run_id),
            name="LLMCompiler.run()",
            instead="await compiler.arun()",
        )

    def resume(self, run_id: str, answer: Any) -> CompilerResult:
        """Blocking :meth:`aresume`."""
        return run_sync(
            self.aresume(run_id, answer),
            name="LLMCompiler.resume()",
            instead="await compiler.aresume()",
        )

    async def _invoke(self, run_id: str, payload: Any, *, durable: bool) -> CompilerResult:
        config = {"configurable": {"thread_id": run_id}}
        try:
            return await self._invoke_with(run_id, payload, config, durable=durable)
        except sqlite3.DatabaseError as e:  # a damaged checkpoint file (the store maps its own)
            path = self.run_dir(run_id) / "checkpoints.sqlite"
            raise ConfigError(
                f"the run's checkpoints {path} cannot be used ({type(e).__name__}: {e});"
                " if it is damaged, remove the run's folder to start the run again"
            ) from e

    async def _invoke_with(
        self, run_id: str, payload: Any, config: Any, *, durable: bool
    ) -> CompilerResult:
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncExitStack() as stack:
            if durable:
                folder = self.run_dir(run_id)
                folder.mkdir(parents=True, exist_ok=True)
                saver = await stack.enter_async_context(
                    AsyncSqliteSaver.from_conn_string(str(folder / "checkpoints.sqlite"))
                )
                executor = self.executor
                if isinstance(executor.store, MemoryResultStore):
                    store = SQLiteResultStore(folder / "results.sqlite")
                    stack.callback(store.close)
                    executor = executor.with_store(store)
            else:
                if self._memory_saver is None:
                    self._memory_saver = InMemorySaver()
                self._memory_runs.add(run_id)
                saver, executor = self._memory_saver, self.executor
            graph = self._graph(executor, saver)
            if isinstance(payload, dict):
                snapshot = await graph.aget_state(config)
                if snapshot.values:
                    # A run with this id exists: continue it (after a crash, the
                    # unfinished node runs again) or, if it ended, report it.
                    payload = None
            attributes: dict[str, Any] = {"plait.run_id": run_id}
            if isinstance(payload, dict):
                attributes["plait.question"] = tracing.content(payload["question"])
            with tracing.span("plait.llmcompiler", attributes):
                state = await graph.ainvoke(payload, config)
        return _result(run_id, state)

    async def aplan(self, question: str) -> tuple[Plan, Usage]:
        """The first plan the planner writes for ``question``, validated but not run.

        With :meth:`aexecute` a person can review a plan before anything runs.

        Raises:
            ModelOutputError: the planner wrote no usable plan (none, or one that
                does not parse, names unknown tools or has bad arguments; the
                :class:`PlanError` saying why is its cause).
        """
        tools, _ = await self._planner_tools(question)
        request = planner_request(
            tools, question, [], plan_format=self.plan_format, max_tasks=self.max_tasks
        )
        if self.plan_format == "json":
            return await self._json_plan(request, question)
        completion = await self.planner.complete(request)
        names = {n: parameter_names(t) for n, t in self.tools.items()}
        with model_plan(lambda: completion.text):
            tasks = [t async for t in parse_plan_stream(_single(completion.text), names)]
            if not tasks:
                raise ModelOutputError("the planner wrote no task", raw=completion.text)
            plan = Plan(tasks=tuple(tasks)).validate_against(
                self.tools, check_args=self._check_args
            )
        return plan, completion.usage

    async def aexecute(self, question: str, plan: Plan, *, run_id: str | None = None) -> Round:
        """Run ``plan`` (for example from :meth:`aplan`) and join: one round, no replanning.

        The round's ``action`` says whether the joiner wanted another plan; its
        ``usage`` counts the joiner only (:meth:`aplan` returns the planner's).
        """
        run = await self.executor.run(
            plan, run_id=run_id or uuid.uuid4().hex[:12], known_tools=self.tools
        )
        join = await self.joiner.complete(joiner_request(question, plan, run, quarantine=self._q))
        action, text = decision(join)
        return self._round(plan, run, action, text, join.usage, None)

    @property
    def _q(self) -> bool:
        return self.mode == "plan_then_execute"

    def _shown(self, run: RunResult) -> frozenset[Source]:
        """The sources of the results the joiner (and a replanner) read from ``run``."""
        return frozenset(
            s
            for o in run.outcomes.values()
            if not (self._q and untrusted(o.sources))
            for s in o.sources
        )

    def _round(
        self,
        plan: Plan,
        run: RunResult,
        action: Any,
        text: str,
        usage: Usage,
        selection: SelectionDecision | None,
    ) -> Round:
        sources = {USER, *self._shown(run)}
        if not self._q:
            return Round(
                plan=plan,
                run=run,
                action=action,
                answer=text,
                usage=usage,
                sources=sources,
                selection=selection,
            )

        def fill(match: re.Match[str]) -> str:
            outcome = run.outcomes.get(match.group(1))
            if outcome is None or not untrusted(outcome.sources):
                return match.group(0)  # not a withheld result: "$5" may mean five dollars
            sources.update(outcome.sources)
            if outcome.status != "done":
                return f"[{outcome.status}: {outcome.error}]"
            value = outcome.result
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

        answer = _ANSWER_REFERENCE.sub(fill, text)
        return Round(
            plan=plan,
            run=run,
            action=action,
            answer=answer,
            usage=usage,
            sources=sources,
            template=text,
            selection=selection,
        )

    async def _planner_tools(
        self, question: str
    ) -> tuple[dict[str, ToolSpec], SelectionDecision | None]:
        """The tools the planner is shown for ``question``, and the selection decision."""
        selection = self.tool_selection
        if selection is None:
            selection = default_selection(
                native_tool_calls=self.planner.capabilities.native_tool_calls, role="planner"
            )
        if selection.policy == "model" or len(self.tools) <= 1:
            return self.tools, None
        if selection.policy == "hybrid":
            if len(self.tools) <= selection.k:
                return self.tools, None  # a shortlist of everything changes nothing
            selection = dataclasses.replace(selection, fix_margin=None)
        selector = ToolSelector.for_embedder(selection.embedder or default_embedder())
        decision = await selector.decide(question, list(self.tools.values()), selection)
        # The plan lists the kept tools in their own order.
        kept = {name: spec for name, spec in self.tools.items() if name in decision.offered}
        return kept, decision

    def _next(self, state: _State) -> str:
        rounds = state["rounds"]
        wants_more = rounds[-1]["action"] == "replan"
        return "replan" if wants_more and len(rounds) <= self.max_replans else "end"

    async def _plan_and_execute(self, state: _State, executor: EagerExecutor) -> dict[str, Any]:
        previous = [Round.model_validate(r) for r in state.get("rounds", [])]
        outer_id = state["run_id"]
        round_id = f"{outer_id}-{len(previous) + 1}"
        store = executor.store
        gate = ApprovalGate(executor, round_id, {"run_id": outer_id, "round": len(previous) + 1})
        # After a resume or a crash this node runs again from the top: a plan
        # stored for the round is reused (never planned twice) and its finished
        # tasks come back from the store.
        await gate.replay()
        # The plan's literal arguments come from what the planner read: the
        # question, and every earlier result it was shown.
        base = frozenset({USER}).union(*(self._shown(r.run) for r in previous))
        with tracing.span("plait.round", {"plait.run_id": round_id}) as span:
            found, saved = await store.load_value(round_id, "plan")
            run: RunResult | None = None
            selection: SelectionDecision | None = None
            if found:
                plan = Plan.model_validate(saved["plan"])
                usage = Usage.model_validate(saved["usage"])
                gate.exec_id = saved["exec_id"]
                if saved.get("selection"):
                    selection = SelectionDecision.model_validate(saved["selection"])
            else:
                tools, selection = await self._planner_tools(state["question"])
                if selection is not None:
                    span.set_attributes(
                        {
                            "plait.tool_selection.policy": selection.policy,
                            "plait.tool_selection.offered": list(selection.offered),
                        }
                    )
                request = planner_request(
                    tools,
                    state["question"],
                    [(r.plan, r.run, r.template or r.answer) for r in previous],
                    plan_format=self.plan_format,
                    max_tasks=self.max_tasks,
                    quarantine=self._q,
                )
                if self.plan_format == "json":
                    attributes = chat_attributes(self.planner.name, request)
                    with tracing.span("plait.plan", attributes) as plan_span:
                        plan, usage = await self._json_plan(request, state["question"])
                        plan_span.set_attributes(_plan_attributes(plan, usage))
                else:
                    # A stream cut off by a crash left a partial plan under this
                    # round's id: a new plan gets its own id so that no stored
                    # result is mistaken for a different task's.
                    _, attempts = await store.load_value(round_id, "planning_attempts")
                    attempt = int(attempts or 0) + 1
                    await store.save_value(round_id, "planning_attempts", attempt)
                    gate.exec_id = round_id if attempt == 1 else f"{round_id}.{attempt}"
                    plan, run, usage = await self._streamed_plan_and_run(
                        request, gate.exec_id, executor, gate.decisions, outer_id, base
                    )
                    span.set_attributes(_plan_attributes(plan, usage))
                await store.save_value(
                    round_id,
                    "plan",
                    {
                        "plan": plan.model_dump(mode="json"),
                        "usage": usage.model_dump(mode="json"),
                        "exec_id": gate.exec_id,
                        "selection": selection.model_dump(mode="json") if selection else None,
                    },
                )
            run = await gate.run(
                plan, known_tools=self.tools, scope=outer_id, first=run, sources=base
            )
            join_request = joiner_request(state["question"], plan, run, quarantine=self._q)
            attributes = chat_attributes(self.joiner.name, join_request)
            with tracing.span("plait.join", attributes) as join_span:
                join = await self.joiner.complete(join_request)
                join_span.set_attributes(response_attributes(join))
        action, text = decision(join)
        record = self._round(plan, run, action, text, usage + join.usage, selection)
        return {"rounds": [record.model_dump(mode="json")]}

    async def _json_plan(self, request: ChatRequest, question: str) -> tuple[Plan, Usage]:
        k = resolve_tool_sampling(self.tool_sampling, self.planner)
        if k == 1:
            completion = await self.planner.complete(request)
            return self._parsed_plan(completion), completion.usage
        schemas = {name: spec.parameters for name, spec in self.tools.items()}
        plan, usage, decided = await voted_plan(
            self.planner, request, k, question, self._parsed_plan, schemas
        )
        span = tracing.current_span()
        if span is not None:
            span.set_attributes(vote_attributes(decided))
        return plan, usage

    def _parsed_plan(self, completion: Completion) -> Plan:
        try:
            raw = completion.parse_json()["tasks"]
            tasks = without_repeats(
                [
                    self._flag(Task(id=str(i), tool=t["tool"], args=t.get("args", {})))
                    for i, t in enumerate(raw, start=1)
                ]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelOutputError(
                f"the planner's plan is malformed ({e})", raw=completion.text
            ) from e
        with model_plan(lambda: completion.text):
            return Plan(tasks=tasks).validate_against(self.tools, check_args=self._check_args)

    async def _streamed_plan_and_run(
        self,
        request: ChatRequest,
        round_id: str,
        executor: EagerExecutor,
        approvals: Mapping[str, Approval],
        scope: str,
        sources: frozenset[Source],
    ) -> tuple[Plan, RunResult, Usage]:
        seen: list[Task] = []
        final: list[Completion] = []
        streamed: list[str] = []

        async def text() -> AsyncIterator[str]:
            async for chunk in self.planner.stream(request):
                if chunk.completion is not None:
                    final.append(chunk.completion)
                else:
                    streamed.append(chunk.delta)
                    yield chunk.delta

        async def tasks() -> AsyncIterator[Task]:
            names = {n: parameter_names(t) for n, t in self.tools.items()}
            async for parsed in parse_plan_stream(text(), names):
                task = self._flag(parsed)
                problem = self._check_args(task)
                if problem:
                    raise PlanError(f"bad arguments for {task.tool!r}: {problem}", task_id=task.id)
                seen.append(task)
                yield task

        # Whatever PlanError this raises (parser, argument check, the executor's
        # check of a streamed task) is about a plan the model wrote.
        with model_plan(lambda: final[0].text if final else "".join(streamed)):
            run = await executor.run(
                tasks(),
                run_id=round_id,
                known_tools=self.tools,
                approvals=approvals,
                scope=scope,
                sources=sources,
            )
        if not seen:
            raw = final[0].text if final else ""
            raise ModelOutputError("the planner wrote no task", raw=raw)
        usage = final[0].usage if final else Usage()
        return Plan(tasks=tuple(seen)), run, usage

    def _flag(self, task: Task) -> Task:
        if task.tool in self.requires_approval and not task.requires_approval:
            return task.model_copy(update={"requires_approval": True})
        return task

    def _check_args(self, task: Task) -> str | None:
        spec = self.tools.get(task.tool)
        if spec is None:
            return None  # the executor reports unknown tools, with a hint
        params = spec.parameters.get("properties", {})
        unknown = sorted(set(task.args) - set(params))
        if unknown:
            return f"unknown argument(s) {', '.join(unknown)}"
        missing = sorted(set(spec.parameters.get("required", ())) - set(task.args))
        if missing:
            return f"missing required argument(s) {', '.join(missing)}"
        return None


def _result(run_id: str, state: dict[str, Any]) -> CompilerResult:
    rounds = tuple(Round.model_validate(r) for r in state.get("rounds", []))
    awaiting = tuple(i.value for i in state.get("__interrupt__", ()))
    last = rounds[-1] if rounds else None
    return CompilerResult(
        answer=last.answer if last else "",
        finished=bool(last and last.action == "finish" and not awaiting),
        rounds=rounds,
        run_id=run_id,
        awaiting=awaiting,
    )


def _plan_attributes(plan: Plan, usage: Usage) -> dict[str, Any]:
    return {
        **usage_attributes(usage),
        "plait.plan.tasks": len(plan.tasks),
        "plait.plan.tools": [t.tool for t in plan.tasks],
    }


async def _single(text: str) -> AsyncIterator[str]:
    yield text
