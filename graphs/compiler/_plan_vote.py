"""Self-consistency for JSON plans: k plans for one question, voted on like tool calls.

The planner's JSON plan is a list of tool calls; with ``tool_sampling=k`` the
compiler asks for k plans at once (one batch over the shared prompt on the
local engine) and keeps the one :func:`plait.agents.vote_calls` picks: equal
plans (same tools, same arguments up to defaults, case and spacing) count
together, ties go to the plan whose arguments the question states most.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from plait.agents import ToolVote, sampled_requests, vote_calls
from plait.backends import Backend
from plait.chat import ChatRequest
from plait.completions import Completion, Usage
from plait.errors import ModelOutputError

from ..dag import Plan

__all__ = ["voted_plan"]


async def _candidate(
    planner: Backend, request: ChatRequest, parse: Callable[[Completion], Plan]
) -> tuple[Plan | ModelOutputError, Usage]:
    usage = Usage()
    try:
        completion = await planner.complete(request)
        usage = completion.usage
        return parse(completion), usage
    except ModelOutputError as e:  # cut off, or no usable plan: this candidate drops out
        return e, usage


async def voted_plan(
    planner: Backend,
    request: ChatRequest,
    k: int,
    question: str,
    parse: Callable[[Completion], Plan],
    schemas: Mapping[str, Mapping[str, Any]],
) -> tuple[Plan, Usage, ToolVote]:
    """The plan the vote keeps among ``k``, every candidate's usage, and the vote.

    Raises:
        ModelOutputError: no candidate wrote a usable plan (the first one's error).
    """
    tasks = [
        asyncio.ensure_future(_candidate(planner, r, parse)) for r in sampled_requests(request, k)
    ]
    try:
        outcomes = await asyncio.gather(*tasks)
    finally:
        for task in tasks:  # a backend error in one leaves the others running: stop them
            task.cancel()
    usage = sum((u for _, u in outcomes), Usage())
    candidates = [
        tuple((t.tool, dict(t.args)) for t in p.tasks) if isinstance(p, Plan) else None
        for p, _ in outcomes
    ]
    decided = vote_calls(candidates, question, schemas)
    if decided is None:
        raise next(p for p, _ in outcomes if isinstance(p, ModelOutputError))
    plan = outcomes[decided.winner][0]
    assert isinstance(plan, Plan)
    return plan, usage, decided
