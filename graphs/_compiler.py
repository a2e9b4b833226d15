"""LLMCompiler: plan tool calls as a DAG, run them eagerly, join or replan.

The outer loop (plan and execute -> join -> maybe replan) is a LangGraph graph,
so it can be used as a subgraph, streamed and checkpointed. Task scheduling
inside a round is the eager executor's, never LangGraph's supersteps.
"""

from __future__ import annotations

import asyncio
import json
import operator
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from importlib import resources
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict

from plait.backends import Backend
from plait.chat import ChatRequest, ToolSpec
from plait.completions import Completion, Usage
from plait.errors import ModelOutputError, PlanError
from plait.messages import SystemMessage, UserMessage

from ._events import RunResult
from ._executor import EagerExecutor, TaskRunner
from ._plan import Plan, Task
from ._plan_parser import parse_plan_stream
from ._references import substitute

__all__ = ["CompilerResult", "LLMCompiler", "Round", "tool_runner"]

_REFERENCE_SCHEMA = {"type": "string", "pattern": "^[$][1-9][0-9]?$"}
_JOIN_SCHEMA = {
    "type": "object",
    # The answer comes first: small models otherwise echo the action word into it.
    # maxLength bounds the string in the grammar, so a rambling model still closes it.
    "properties": {
        "answer": {"type": "string", "maxLength": 400},
        "action": {"enum": ["finish", "replan"]},
    },
    "required": ["action", "answer"],
    "additionalProperties": False,
}


def _prompt(name: str) -> str:
    return resources.files(__package__).joinpath(f"prompts/{name}.txt").read_text()


class Round(BaseModel):
    """One plan-execute-join round."""

    model_config = ConfigDict(frozen=True)

    plan: Plan
    run: RunResult
    action: Literal["finish", "replan"]
    answer: str
    usage: Usage


class CompilerResult(BaseModel):
    """The final answer and every round that led to it."""

    model_config = ConfigDict(frozen=True)

    answer: str
    finished: bool
    rounds: tuple[Round, ...]

    @property
    def usage(self) -> Usage:
        return sum((r.usage for r in self.rounds), Usage())


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
        executor: the executor to run plans with (default: an ``EagerExecutor``).
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
        executor: EagerExecutor | None = None,
    ) -> None:
        self.planner = planner
        self.joiner = joiner or planner
        self.tools = {t.name: t for t in tools}
        self.plan_format = plan_format
        self.max_replans = max_replans
        self.max_tasks = max_tasks
        self.executor = executor or EagerExecutor(runner)

    def graph(self, checkpointer: Any = None) -> Any:
        """The loop as a compiled LangGraph graph over ``{"question": ...}``."""
        from langgraph.graph import END, START, StateGraph

        builder = StateGraph(_State)
        builder.add_node("plan_and_execute", self._plan_and_execute_node)
        builder.add_edge(START, "plan_and_execute")
        builder.add_conditional_edges(
            "plan_and_execute", self._next, {"replan": "plan_and_execute", "end": END}
        )
        return builder.compile(checkpointer=checkpointer)

    async def arun(self, question: str, *, run_id: str | None = None) -> CompilerResult:
        """Answer ``question``; see :class:`CompilerResult`."""
        state = await self.graph().ainvoke(
            {"question": question, "run_id": run_id or uuid.uuid4().hex[:12], "rounds": []}
        )
        rounds = tuple(Round.model_validate(r) for r in state["rounds"])
        last = rounds[-1]
        return CompilerResult(answer=last.answer, finished=last.action == "finish", rounds=rounds)

    def run(self, question: str, *, run_id: str | None = None) -> CompilerResult:
        """Blocking :meth:`arun`."""
        return asyncio.run(self.arun(question, run_id=run_id))

    async def aplan(self, question: str) -> tuple[Plan, Usage]:
        """The first plan the planner writes for ``question``, validated but not run.

        With :meth:`aexecute` a person can review a plan before anything runs.

        Raises:
            ModelOutputError: the planner wrote no usable plan.
            PlanError: the plan names unknown tools or has bad arguments.
        """
        request = self._planner_request(question, [])
        if self.plan_format == "json":
            return await self._json_plan(request)
        completion = await self.planner.complete(request)
        names = {n: _parameter_names(t) for n, t in self.tools.items()}
        tasks = [t async for t in parse_plan_stream(_single(completion.text), names)]
        if not tasks:
            raise ModelOutputError("the planner wrote no task", raw=completion.text)
        plan = Plan(tasks=tuple(tasks)).validate_against(self.tools, check_args=self._check_args)
        return plan, completion.usage

    async def aexecute(self, question: str, plan: Plan, *, run_id: str | None = None) -> Round:
        """Run ``plan`` (for example from :meth:`aplan`) and join: one round, no replanning.

        The round's ``action`` says whether the joiner wanted another plan; its
        ``usage`` counts the joiner only (:meth:`aplan` returns the planner's).
        """
        run = await self.executor.run(
            plan, run_id=run_id or uuid.uuid4().hex[:12], known_tools=self.tools
        )
        join = await self.joiner.complete(self._joiner_request(question, plan, run))
        try:
            decision = join.parse_json()
            action, answer = decision["action"], str(decision["answer"])
        except (ModelOutputError, KeyError, TypeError) as e:
            raise ModelOutputError(
                "the joiner's reply is not a valid decision", raw=join.text
            ) from e
        return Round(plan=plan, run=run, action=action, answer=answer, usage=join.usage)

    def _next(self, state: _State) -> str:
        rounds = state["rounds"]
        wants_more = rounds[-1]["action"] == "replan"
        return "replan" if wants_more and len(rounds) <= self.max_replans else "end"

    async def _plan_and_execute_node(self, state: _State) -> dict[str, Any]:
        previous = [Round.model_validate(r) for r in state.get("rounds", [])]
        round_id = f"{state['run_id']}-{len(previous) + 1}"
        request = self._planner_request(state["question"], previous)
        if self.plan_format == "json":
            plan, usage = await self._json_plan(request)
            run = await self.executor.run(plan, run_id=round_id, known_tools=self.tools)
        else:
            plan, run, usage = await self._streamed_plan_and_run(request, round_id)
        join = await self.joiner.complete(self._joiner_request(state["question"], plan, run))
        try:
            decision = join.parse_json()
            action, answer = decision["action"], str(decision["answer"])
        except (ModelOutputError, KeyError, TypeError) as e:
            raise ModelOutputError(
                "the joiner's reply is not a valid decision", raw=join.text
            ) from e
        record = Round(plan=plan, run=run, action=action, answer=answer, usage=usage + join.usage)
        return {"rounds": [record.model_dump(mode="json")]}

    def _planner_request(self, question: str, previous: list[Round]) -> ChatRequest:
        tools = "\n".join(
            f"- {t.name}({', '.join(_parameter_names(t))}): {t.description}"
            for t in self.tools.values()
        )
        system = _prompt(f"planner_{self.plan_format}").format(tools=tools).strip()
        user = question
        if previous:
            history = "\n\n".join(
                _observations(r.plan, r.run) + f"\nJoiner: {r.answer}" for r in previous
            )
            user = f"{question}\n\n" + _prompt("replan_context").format(history=history)
        fields: dict[str, Any] = {"temperature": 0.0, "max_tokens": 400, "agent": "planner"}
        if self.plan_format == "json":
            fields["response_schema"] = self._plan_schema()
        return ChatRequest(
            messages=(SystemMessage(content=system), UserMessage(content=user)), **fields
        )

    def _plan_schema(self) -> dict[str, Any]:
        items = [
            {
                "type": "object",
                "properties": {"tool": {"const": t.name}, "args": _args_with_references(t)},
                "required": ["tool", "args"],
                "additionalProperties": False,
            }
            for t in self.tools.values()
        ]
        return {
            "type": "object",
            "properties": {
                "tasks": {
                    "type": "array",
                    "items": items[0] if len(items) == 1 else {"anyOf": items},
                    "minItems": 1,
                    "maxItems": self.max_tasks,
                }
            },
            "required": ["tasks"],
            "additionalProperties": False,
        }

    async def _json_plan(self, request: ChatRequest) -> tuple[Plan, Usage]:
        completion = await self.planner.complete(request)
        try:
            raw = completion.parse_json()["tasks"]
            tasks = _without_repeats(
                [
                    Task(id=str(i), tool=t["tool"], args=t.get("args", {}))
                    for i, t in enumerate(raw, start=1)
                ]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelOutputError(
                f"the planner's plan is malformed ({e})", raw=completion.text
            ) from e
        plan = Plan(tasks=tasks).validate_against(self.tools, check_args=self._check_args)
        return plan, completion.usage

    async def _streamed_plan_and_run(
        self, request: ChatRequest, round_id: str
    ) -> tuple[Plan, RunResult, Usage]:
        seen: list[Task] = []
        final: list[Completion] = []

        async def text() -> AsyncIterator[str]:
            async for chunk in self.planner.stream(request):
                if chunk.completion is not None:
                    final.append(chunk.completion)
                else:
                    yield chunk.delta

        async def tasks() -> AsyncIterator[Task]:
            names = {n: _parameter_names(t) for n, t in self.tools.items()}
            async for task in parse_plan_stream(text(), names):
                problem = self._check_args(task)
                if problem:
                    raise PlanError(f"bad arguments for {task.tool!r}: {problem}", task_id=task.id)
                seen.append(task)
                yield task

        run = await self.executor.run(tasks(), run_id=round_id, known_tools=self.tools)
        if not seen:
            raw = final[0].text if final else ""
            raise ModelOutputError("the planner wrote no task", raw=raw)
        usage = final[0].usage if final else Usage()
        return Plan(tasks=tuple(seen)), run, usage

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

    def _joiner_request(self, question: str, plan: Plan, run: RunResult) -> ChatRequest:
        user = f"Question: {question}\n\nTool results:\n{_observations(plan, run)}"
        return ChatRequest(
            messages=(SystemMessage(content=_prompt("joiner").strip()), UserMessage(content=user)),
            response_schema=_JOIN_SCHEMA,
            temperature=0.0,
            max_tokens=300,
            agent="joiner",
        )


async def _single(text: str) -> AsyncIterator[str]:
    yield text


def _without_repeats(tasks: list[Task]) -> tuple[Task, ...]:
    """Drop tasks that repeat an earlier one verbatim; references follow the kept one.

    Small models often write the same call several times; running it again adds
    nothing.
    """
    kept: list[Task] = []
    first_of: dict[str, str] = {}
    alias: dict[str, str] = {}
    for task in tasks:
        args = (
            substitute(task.args, {old: f"${new}" for old, new in alias.items()})
            if alias
            else task.args
        )
        key = json.dumps([task.tool, args], sort_keys=True)
        if key in first_of:
            alias[task.id] = first_of[key]
            continue
        first_of[key] = task.id
        kept.append(task.model_copy(update={"args": args}))
    return tuple(kept)


def _parameter_names(tool: ToolSpec) -> list[str]:
    return list(tool.parameters.get("properties", {}))


def _args_with_references(tool: ToolSpec) -> dict[str, Any]:
    """The tool's argument schema, where any argument may also be a ``$N`` reference."""
    properties = {
        name: {"anyOf": [schema, _REFERENCE_SCHEMA]}
        for name, schema in tool.parameters.get("properties", {}).items()
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if tool.parameters.get("required"):
        schema["required"] = list(tool.parameters["required"])
    return schema


def _observations(plan: Plan, run: RunResult) -> str:
    lines = []
    for task in plan.tasks:
        outcome = run.outcomes.get(task.id)
        call = f"{task.id}. {task.tool}({json.dumps(task.args, ensure_ascii=False)})"
        if outcome is None:
            lines.append(f"{call} -> not run")
        elif outcome.status == "done":
            lines.append(f"{call} -> {_short(outcome.result)}")
        else:
            lines.append(f"{call} -> {outcome.status.upper()}: {outcome.error}")
    return "\n".join(lines)


def _short(value: Any, limit: int = 500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + " ...[truncated]"


def tool_runner(functions: Mapping[str, Any]) -> TaskRunner:
    """A runner calling plain (sync or async) functions by tool name, with keyword args."""

    async def run(task: Task, args: dict[str, Any]) -> Any:
        result = functions[task.tool](**args)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    return run
