"""Writing a round's plan: the tools the planner is shown, its request, and reading its plan.

A JSON plan is read whole and validated once (a :class:`~plait.graphs.dag.ValidatedPlan`
the executor trusts). A text plan is executed while it streams: each task is
checked as it is parsed and handed to the executor at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Literal

from plait import tracing
from plait._span_attributes import chat_attributes, usage_attributes
from plait.agents import resolve_tool_sampling, vote_attributes
from plait.backends import Backend
from plait.chat import ChatRequest, ToolSpec
from plait.completions import Completion, Usage
from plait.errors import ModelOutputError, PlanError
from plait.memory import default_embedder
from plait.provenance import Source
from plait.tools import SelectionDecision, ToolSelection, ToolSelector, default_selection

from ..dag import Approval, EagerExecutor, Plan, RunResult, Task, parse_plan_stream
from ._plan_vote import voted_plan
from ._prompts import model_plan, parameter_names, planner_request, without_repeats

__all__ = ["PlanWriter"]


@dataclasses.dataclass(frozen=True, slots=True)
class PlanWriter:
    """What a planner backend is asked and how its plans are read.

    Attributes:
        backend: writes the plans.
        tools: what a plan may call, by name.
        plan_format: ``"json"`` (schema-constrained) or ``"text"`` (streamed).
        max_tasks: most tasks in one JSON plan.
        requires_approval: tools whose tasks are flagged for approval.
        selection: how the planner's tools are chosen (``None``: the default
            for the backend).
        quarantine: untrusted results are withheld from the replanner.
        tool_sampling: JSON plans drawn per round and voted on (``None``: the
            backend's default, as for agents).
    """

    backend: Backend
    tools: Mapping[str, ToolSpec]
    plan_format: Literal["json", "text"]
    max_tasks: int
    requires_approval: frozenset[str]
    selection: ToolSelection | None
    quarantine: bool
    tool_sampling: int | None = None

    async def tools_for(
        self, question: str
    ) -> tuple[dict[str, ToolSpec], SelectionDecision | None]:
        """The tools the planner is shown for ``question``, and the selection decision."""
        selection = self.selection
        if selection is None:
            selection = default_selection(
                native_tool_calls=self.backend.capabilities.native_tool_calls, role="planner"
            )
        if selection.policy == "model" or len(self.tools) <= 1:
            return dict(self.tools), None
        if selection.policy == "hybrid":
            if len(self.tools) <= selection.k:
                return dict(self.tools), None  # a shortlist of everything changes nothing
            selection = dataclasses.replace(selection, fix_margin=None)
        selector = ToolSelector.for_embedder(selection.embedder or default_embedder())
        decision = await selector.decide(question, list(self.tools.values()), selection)
        # The plan lists the kept tools in their own order.
        kept = {name: spec for name, spec in self.tools.items() if name in decision.offered}
        return kept, decision

    def request(
        self,
        tools: Mapping[str, ToolSpec],
        question: str,
        history: Sequence[tuple[Plan, RunResult, str]] = (),
    ) -> ChatRequest:
        """The planner's request; ``history`` holds earlier rounds' plans, runs and answers."""
        return planner_request(
            tools,
            question,
            history,
            plan_format=self.plan_format,
            max_tasks=self.max_tasks,
            quarantine=self.quarantine,
        )

    async def json_plan(self, request: ChatRequest, question: str) -> tuple[Plan, Usage]:
        """The planner's JSON plan for ``request``, validated against the tools.

        With ``tool_sampling`` k > 1, k plans are asked for at once and the vote
        keeps one (``plait.tool_sampling.*`` on the ``plait.plan`` span).
        """
        with tracing.span("plait.plan", chat_attributes(self.backend.name, request)) as span:
            k = resolve_tool_sampling(self.tool_sampling, self.backend)
            if k == 1:
                completion = await self.backend.complete(request)
                plan, usage = self.parsed_plan(completion), completion.usage
            else:
                schemas = {name: spec.parameters for name, spec in self.tools.items()}
                plan, usage, decided = await voted_plan(
                    self.backend, request, k, question, self.parsed_plan, schemas
                )
                span.set_attributes(vote_attributes(decided))
            span.set_attributes(plan_attributes(plan, usage))
        return plan, usage

    def parsed_plan(self, completion: Completion) -> Plan:
        """``completion``'s JSON plan, validated against the tools."""
        try:
            raw = completion.parse_json()["tasks"]
            tasks = without_repeats(
                [
                    self.flag(Task(id=str(i), tool=t["tool"], args=t.get("args", {})))
                    for i, t in enumerate(raw, start=1)
                ]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelOutputError(
                f"the planner's plan is malformed ({e})", raw=completion.text
            ) from e
        with model_plan(lambda: completion.text):
            return Plan(tasks=tasks).validate_against(self.tools, check_args=self.check_args)

    async def text_plan(self, request: ChatRequest) -> tuple[Plan, Usage]:
        """The planner's text plan, read whole (nothing runs), validated against the tools."""
        completion = await self.backend.complete(request)
        names = {n: parameter_names(t) for n, t in self.tools.items()}
        with model_plan(lambda: completion.text):
            tasks = [t async for t in parse_plan_stream(_single(completion.text), names)]
            if not tasks:
                raise ModelOutputError("the planner wrote no task", raw=completion.text)
            plan = Plan(tasks=tuple(tasks)).validate_against(self.tools, check_args=self.check_args)
        return plan, completion.usage

    async def streamed_plan_and_run(
        self,
        request: ChatRequest,
        executor: EagerExecutor,
        exec_id: str,
        *,
        approvals: Mapping[str, Approval],
        scope: str,
        sources: frozenset[Source],
    ) -> tuple[Plan, RunResult, Usage]:
        """Stream a text plan into ``executor``: each task runs as soon as it is parsed."""
        seen: list[Task] = []
        final: list[Completion] = []
        streamed: list[str] = []

        async def text() -> AsyncIterator[str]:
            async for chunk in self.backend.stream(request):
                if chunk.completion is not None:
                    final.append(chunk.completion)
                else:
                    streamed.append(chunk.delta)
                    yield chunk.delta

        async def tasks() -> AsyncIterator[Task]:
            names = {n: parameter_names(t) for n, t in self.tools.items()}
            async for parsed in parse_plan_stream(text(), names):
                task = self.flag(parsed)
                problem = self.check_args(task)
                if problem:
                    raise PlanError(f"bad arguments for {task.tool!r}: {problem}", task_id=task.id)
                seen.append(task)
                yield task

        # Whatever PlanError this raises (parser, argument check, the executor's
        # check of a streamed task) is about a plan the model wrote.
        with model_plan(lambda: final[0].text if final else "".join(streamed)):
            run = await executor.run(
                tasks(),
                run_id=exec_id,
                known_tools=self.tools,
                approvals=approvals,
                scope=scope,
                sources=sources,
            )
        if not seen:
            raise ModelOutputError("the planner wrote no task", raw=final[0].text if final else "")
        return Plan(tasks=tuple(seen)), run, final[0].usage if final else Usage()

    def flag(self, task: Task) -> Task:
        """``task``, flagged for approval when its tool requires it."""
        if task.tool in self.requires_approval and not task.requires_approval:
            return task.model_copy(update={"requires_approval": True})
        return task

    def check_args(self, task: Task) -> str | None:
        """What is wrong with ``task``'s argument names, or ``None``."""
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


def plan_attributes(plan: Plan, usage: Usage) -> dict[str, object]:
    """A plan span's attributes: its size, tools and the planner's usage."""
    return {
        **usage_attributes(usage),
        "plait.plan.tasks": len(plan.tasks),
        "plait.plan.tools": [t.tool for t in plan.tasks],
    }


async def _single(text: str) -> AsyncIterator[str]:
    yield text
