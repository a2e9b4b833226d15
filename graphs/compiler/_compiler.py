"""LLMCompiler: plan tool calls as a DAG, run them eagerly, join or replan.

The outer loop (plan and execute -> join -> maybe replan) is plain async code
over typed round records (:mod:`._loop`, :mod:`._rounds`) kept in the run's
result store; task scheduling inside a round is the eager executor's. LangGraph
meets it at the edge: :meth:`LLMCompiler.graph` wraps the loop as a LangGraph
graph (:mod:`._langgraph_edge`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from plait import tracing
from plait._sync import run_sync
from plait.agents import check_tool_sampling
from plait.backends import Backend
from plait.chat import ToolSpec
from plait.completions import Usage
from plait.errors import ConfigError, PlanError
from plait.policies import Policy, PolicySet
from plait.tools import ToolSelection

from ..dag import (
    EagerExecutor,
    MemoryResultStore,
    Plan,
    RayExecutor,
    ResultStore,
    SQLiteResultStore,
    TaskRunner,
    run_directory,
)
from ._joining import join
from ._loop import PlannerRun, refuse_legacy
from ._planning import PlanWriter
from ._rounds import CompilerResult, Round

__all__ = ["CompilerMode", "LLMCompiler"]

# aresume's answer may be any value a reviewer gives, None included.
_NO_ANSWER: Any = object()

CompilerMode = Literal["default", "plan_then_execute"]
"""How far untrusted results may steer: ``default`` shows every result to the
joiner and the replanner; ``plan_then_execute`` shows them only trusted ones."""


class LLMCompiler:
    """Answers a question by planning tool calls, running them in parallel, and joining.

    Args:
        planner: the backend that writes plans.
        tools: what the planner may call.
        runner: runs one task (see :data:`plait.graphs.TaskRunner`); not needed
            when ``executor`` is an ``EagerExecutor``, which holds its own.
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
            (the run pauses until it is resumed).
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
        runner: TaskRunner | None = None,
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
        if runner is None and not isinstance(executor, EagerExecutor):
            raise ConfigError("LLMCompiler needs a runner, or an EagerExecutor that holds one")
        if executor == "ray":
            assert runner is not None
            executor = RayExecutor(runner)
        elif executor is None or executor == "local":
            assert runner is not None
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
        # Runs without a run id that paused for approval, until they end: the
        # only per-run state the compiler holds (a durable run lives in its store).
        self._paused: dict[str, PlannerRun] = {}

    @property
    def quarantine(self) -> bool:
        """Untrusted results are withheld from the joiner and the replanner."""
        return self.mode == "plan_then_execute"

    @property
    def writer(self) -> PlanWriter:
        """How this compiler's planner is asked and its plans read."""
        return PlanWriter(
            backend=self.planner,
            tools=self.tools,
            plan_format=self.plan_format,
            max_tasks=self.max_tasks,
            requires_approval=self.requires_approval,
            selection=self.tool_selection,
            quarantine=self.quarantine,
            tool_sampling=self.tool_sampling,
        )

    def graph(self, checkpointer: Any = None) -> Any:
        """The loop as a compiled LangGraph graph over ``{"question": ..., "run_id": ...}``.

        One node execution per round (state ``"rounds"``, each a dumped
        :class:`Round`); a paused round interrupts with ``{"type": "approval",
        "run_id", "round", "tasks"}`` and goes on with ``Command(resume=answer)``.
        Give a checkpointer (e.g. LangGraph's ``InMemorySaver`` or
        ``AsyncSqliteSaver``) for interrupts; invoke with ``{"configurable":
        {"thread_id": run_id}}``. The rounds and task results are kept in this
        compiler's executor store, keyed by the run id.
        """
        from ._langgraph_edge import planner_graph

        return planner_graph(self, checkpointer)

    def run_dir(self, run_id: str) -> Path:
        """The folder of a durable run (``results.sqlite`` holds its rounds and results)."""
        return run_directory(run_id, self._runs_dir)

    async def arun(
        self, question: str, *, run_id: str | None = None, store: ResultStore | None = None
    ) -> CompilerResult:
        """Answer ``question``; see :class:`CompilerResult`.

        With a ``run_id``, the run is durable: its rounds and task results are
        kept in ``store`` (default: the executor's store when it is not an
        in-memory one, else ``<runs_dir>/<run_id>/results.sqlite``). Calling
        again with the same id after a crash continues where the run stopped:
        finished rounds are not planned again and finished tasks do not run
        again; a finished run returns its result. Without one, the run lives in
        memory for as long as it runs.

        The run pauses (``awaiting`` set, ``finished`` false) when a task flagged
        ``requires_approval`` is reached; continue it with :meth:`aresume`.

        Raises:
            ConfigError: the run's folder holds checkpoints of an older version
                (``checkpoints.sqlite``) and no rounds this version can read.
        """
        if run_id is None:
            run_id = uuid.uuid4().hex[:12]
            executor = self.executor.with_store(MemoryResultStore())
            run = await PlannerRun.open(self, run_id, executor, question)
            return await self._drive_in_memory(run, _NO_ANSWER)
        async with self._durable(run_id, store) as executor:
            run = await PlannerRun.open(self, run_id, executor, question, self._legacy(run_id))
            return await self._drive(run, _NO_ANSWER)

    async def aresume(
        self, run_id: str, answer: Any, *, store: ResultStore | None = None
    ) -> CompilerResult:
        """Continue a run paused for approval with the reviewer's ``answer``.

        ``answer`` is ``True``/``"approve"``, ``False``/``"reject"``, a dict like
        ``{"action": "reject", "reason": "..."}`` or ``{"action": "edit", "args":
        {...}}`` (see :class:`plait.graphs.Approval`), applying to every task
        asked about, or a mapping from task id to such a decision. ``store`` is
        the durable run's store, as for :meth:`arun`.

        Raises:
            PlanError: no such run, it is not paused, or the answer does not fit.
        """
        paused = self._paused.pop(run_id, None)
        if paused is not None:
            return await self._drive_in_memory(paused, answer)
        async with self._durable(run_id, store, resuming=True) as executor:
            run = await PlannerRun.open(self, run_id, executor, None, self._legacy(run_id))
            return await self._drive(run, answer)

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

    async def aplan(self, question: str) -> tuple[Plan, Usage]:
        """The first plan the planner writes for ``question``, validated but not run.

        With :meth:`aexecute` a person can review a plan before anything runs.

        Raises:
            ModelOutputError: the planner wrote no usable plan (none, or one that
                does not parse, names unknown tools or has bad arguments; the
                :class:`PlanError` saying why is its cause).
        """
        writer = self.writer
        tools, _ = await writer.tools_for(question)
        request = writer.request(tools, question)
        if self.plan_format == "json":
            return await writer.json_plan(request, question)
        return await writer.text_plan(request)

    async def aexecute(self, question: str, plan: Plan, *, run_id: str | None = None) -> Round:
        """Run ``plan`` (for example from :meth:`aplan`) and join: one round, no replanning.

        The round's ``action`` says whether the joiner wanted another plan; its
        ``usage`` counts the joiner only (:meth:`aplan` returns the planner's).
        """
        run = await self.executor.run(
            plan, run_id=run_id or uuid.uuid4().hex[:12], known_tools=self.tools
        )
        joined = await join(self.joiner, question, plan, run, quarantine=self.quarantine)
        return Round(
            plan=plan,
            run=run,
            action=joined.action,
            answer=joined.answer,
            usage=joined.usage,
            sources=joined.sources,
            template=joined.template,
        )

    async def _drive(self, run: PlannerRun, answer: Any) -> CompilerResult:
        """Store ``answer`` (when resuming), then run the loop until it ends or pauses."""
        attributes = {"plait.run_id": run.run_id, "plait.question": tracing.content(run.question)}
        with tracing.span("plait.llmcompiler", attributes):
            if answer is not _NO_ANSWER:
                await run.answer(answer)
            return await run.run()

    async def _drive_in_memory(self, run: PlannerRun, answer: Any) -> CompilerResult:
        try:
            return await self._drive(run, answer)
        finally:
            if run.paused:  # kept until it is resumed to its end; then it is dropped
                self._paused[run.run_id] = run

    @asynccontextmanager
    async def _durable(
        self, run_id: str, store: ResultStore | None, *, resuming: bool = False
    ) -> AsyncIterator[EagerExecutor]:
        """The executor of durable run ``run_id``: with ``store``, the executor's own
        durable store, or ``results.sqlite`` in the run's folder (closed after the call).

        The one place that decides where a durable run is kept; resuming a run
        whose folder has no store creates none.
        """
        if store is not None:
            yield self.executor.with_store(store)
            return
        if not isinstance(self.executor.store, MemoryResultStore):
            yield self.executor
            return
        path = self.run_dir(run_id) / "results.sqlite"
        if resuming and not path.exists():
            refuse_legacy(self._legacy(run_id))
            raise PlanError(f"no planner run with id {run_id!r} is paused (no {path})")
        opened = SQLiteResultStore(path)
        try:
            yield self.executor.with_store(opened)
        finally:
            await opened.aclose()

    def _legacy(self, run_id: str) -> Path:
        """Where an older version kept the run's loop (refused when nothing newer is stored)."""
        return self.run_dir(run_id) / "checkpoints.sqlite"
