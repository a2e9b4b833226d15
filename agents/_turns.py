"""Which model turn an agent run takes next: who answers, offered which tools, asked how.

A plain agent answers every turn itself. With :class:`~plait.agents.Roles` a
planner decides first whether a tool is called next: a caller then calls it,
else a summarizer answers. Tool selection shortlists the tools and writes the
call prompt for the turns that call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from plait.backends import Backend
from plait.chat import ChatRequest, ToolChoice
from plait.completions import Completion
from plait.messages import AssistantMessage, Message, UserMessage
from plait.tools import SelectionDecision, Toolset

from ._model_turn import build_request, model_turn
from ._prompts import render
from ._sampled_turn import sampled_turn
from ._selection import one_call, resolve_selection, select_turn, settle_calls
from ._tool_vote import resolve_tool_sampling
from ._trace import Role, TextDelta

if TYPE_CHECKING:
    from ._loop import AgentRun

__all__ = ["Turn", "next_turn", "take_turn"]

_PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"next": {"enum": ["call_tool", "answer"]}, "plan": {"type": "string"}},
    "required": ["next", "plan"],
}


@dataclass(frozen=True)
class Turn:
    """One model turn, decided before it is sent.

    Attributes:
        role: who answers (``agent``, or with roles ``caller`` / ``summarizer``).
        backend: the backend that answers.
        tools: the tools the request offers.
        choice: the request's tool choice (``none`` when no call may be made).
        extra: messages after the conversation, for this turn only.
        selection: the tool-selection decision (``None``: this turn selected nothing).
        call_prompt: what selection adds to the last user message (``""``: nothing).
        plan: the planner's plan (with roles).
    """

    role: Role
    backend: Backend
    tools: Toolset
    choice: ToolChoice
    extra: tuple[Message, ...] = ()
    selection: SelectionDecision | None = None
    call_prompt: str = ""
    plan: str = ""


async def next_turn(run: AgentRun) -> Turn:
    """The next turn of ``run``, in three steps.

    1. The tools the agent may offer now, and whether it may still call one
       (``max_tool_rounds``).
    2. With roles, the planner's decision: the caller calls a tool, else the
       summarizer answers.
    3. Tool selection, for a turn that may call: the first round, and every
       caller turn (ranked against the planner's plan). Later rounds of a plain
       agent see every tool, or a multi-step task could never reach its second.
    """
    agent = run.agent
    tools = await _offered_tools(run)
    limit = agent.max_tool_rounds
    may_call = bool(tools) and (limit is None or run.tool_rounds < limit)
    first_choice = agent.tool_choice if run.tool_rounds == 0 else "auto"
    turn = Turn(role="agent", backend=agent.backend, tools=tools, choice=first_choice)
    if agent.roles is not None:
        turn = await _by_role(run, turn, may_call)
        may_call = turn.role == "caller"
    if not may_call:
        return replace(turn, choice="none" if tools else "auto")
    if run.tool_rounds == 0 or turn.role == "caller":
        return await _selected(run, turn)
    return turn


async def take_turn(run: AgentRun, turn: Turn) -> AsyncIterator[TextDelta | Completion]:
    """Send ``turn``: its text deltas as they stream, then its completion, last.

    A selected turn's completion keeps only the calls selection lets run. A
    selected turn that may call a tool draws ``tool_sampling`` candidates and
    runs the call their vote picks (no deltas stream then: the answer is not
    known until the vote).
    """

    def settle(completion: Completion) -> Completion:
        if turn.call_prompt and turn.selection is not None:
            return settle_calls(turn.selection, run.task, turn.tools, completion)
        return completion

    samples = 1
    if turn.selection is not None and turn.choice != "none":
        samples = resolve_tool_sampling(run.agent.tool_sampling, turn.backend)
    request = _request(run, turn)
    if samples > 1:
        yield await sampled_turn(
            run,
            turn.backend,
            request,
            turn.role,
            turn.selection,
            k=samples,
            tools=turn.tools,
            settle=settle,
        )
        return
    async for item in model_turn(run, turn.backend, request, turn.role, turn.selection):
        yield settle(item) if isinstance(item, Completion) else item


def _request(run: AgentRun, turn: Turn) -> ChatRequest:
    schema = run.schema if run.agent.backend.capabilities.json_schema_output else None
    return build_request(
        run,
        turn.extra,
        tools=turn.tools,
        choice=turn.choice,
        schema=schema,
        tail=turn.call_prompt,
        one_call=bool(turn.call_prompt) and one_call(turn.selection, run.task),
    )


async def _offered_tools(run: AgentRun) -> Toolset:
    allowed = run.runner.allowed(run.agent.name)
    retriever = run.agent.retriever
    if retriever is None or len(allowed) <= retriever.k:
        return allowed
    query = " ".join([run.task, *(getattr(m, "content", None) or "" for m in run.messages[-2:])])
    selected = await run.limits.bounded(retriever.select(query))
    return selected.filter(predicate=lambda t: t.name in allowed)


async def _by_role(run: AgentRun, turn: Turn, may_call: bool) -> Turn:
    roles = run.agent.roles
    assert roles is not None  # only called for an agent with roles
    wants_tool, plan = False, ""
    if may_call:
        wants_tool, plan = await _ask_planner(run, roles.planner or turn.backend)
    if wants_tool:
        return replace(
            turn,
            role="caller",
            backend=roles.caller or turn.backend,
            choice="required",
            extra=(UserMessage(content=render("caller", plan=plan)),),
            plan=plan,
        )
    return replace(
        turn,
        role="summarizer",
        backend=roles.summarizer or turn.backend,
        extra=(UserMessage(content=render("summarizer")),),
        plan=plan,
    )


async def _selected(run: AgentRun, turn: Turn) -> Turn:
    query = turn.plan if turn.role == "caller" and turn.plan else run.task
    selection = resolve_selection(run.agent.tool_selection, turn.backend)
    chosen = await run.limits.bounded(select_turn(selection, query, turn.tools, turn.choice))
    return replace(
        turn,
        tools=chosen.tools,
        choice=chosen.choice,
        selection=chosen.decision,
        call_prompt=chosen.prompt,
    )


async def _ask_planner(run: AgentRun, planner: Backend) -> tuple[bool, str]:
    """Ask the planner whether to call a tool next; return that and its plan.

    The plan also joins the run's messages, for the turns that follow.
    """
    schema = _PLAN_SCHEMA if planner.capabilities.json_schema_output else None
    request = build_request(run, [UserMessage(content=render("planner"))], schema=schema)
    # The planner's deltas are not part of the answer: only its completion counts.
    text = ""
    async for item in model_turn(run, planner, request, "planner"):
        if isinstance(item, Completion):
            text = item.text
    try:
        decision = json.loads(text)
        wants_tool = decision.get("next") == "call_tool"
        plan = str(decision.get("plan", ""))
    except (json.JSONDecodeError, AttributeError):
        # A planner without JSON output: its text is the plan; go on with tools
        # only until the first results are in.
        wants_tool = run.tool_rounds == 0
        plan = text
    if plan:
        run.messages.append(AssistantMessage(content=f"Plan: {plan}"))
    return wants_tool, plan
