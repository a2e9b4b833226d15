"""One model turn of an agent run: the request, the streamed call in its span, the trace entry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from plait import tracing
from plait._request_priority import current_request_priority
from plait._span_attributes import chat_attributes, response_attributes
from plait.backends import Backend
from plait.backends.routing import backend_price
from plait.chat import ChatRequest, ToolChoice
from plait.completions import Completion
from plait.errors import BackendProtocolError
from plait.messages import Message, UserMessage
from plait.provenance import reading
from plait.tools import SelectionDecision, Toolset

from ._run_limits import _LimitReached
from ._tool_vote import ToolVote
from ._trace import ModelTurn, Role, TextDelta

if TYPE_CHECKING:
    from ._loop import AgentRun

__all__ = ["build_request", "model_turn", "record_turn", "turn_attributes"]


def build_request(
    run: AgentRun,
    extra: Sequence[Message],
    *,
    tools: Toolset | None = None,
    choice: ToolChoice = "auto",
    schema: dict[str, Any] | None = None,
    tail: str = "",
    one_call: bool = False,
) -> ChatRequest:
    """The next request of ``run``: its messages so far, then ``extra``.

    ``tail`` joins the last user message (a user turn of its own only when
    the conversation does not end with one): two user turns in a row make
    a small model repeat its call.
    """
    messages = [*run.messages, *extra]
    if tail:
        last = messages[-1] if messages else None
        if isinstance(last, UserMessage):
            messages[-1] = last.model_copy(update={"content": f"{last.content}\n\n{tail}"})
        else:
            messages.append(UserMessage(content=tail))
    return ChatRequest(
        messages=tuple(messages),
        tools=tools.specs if tools is not None else (),
        tool_choice=choice,
        # A fixed tool for a request naming one item: one call, so the
        # model cannot repeat it until the token limit cuts the reply off.
        parallel_tool_calls=False if one_call else None,
        response_schema=schema,
        max_tokens=run.limits.limits.max_turn_tokens,
        temperature=run.agent.temperature,
        agent=run.agent.name,
        priority=current_request_priority(),
    )


async def model_turn(
    run: AgentRun,
    backend: Backend,
    request: ChatRequest,
    role: Role,
    selection: SelectionDecision | None = None,
) -> AsyncIterator[TextDelta | Completion]:
    """One model call: its text deltas as they stream, then its completion, last.

    The turn is recorded in the run's trace (usage, cost, timing) and the run
    reads what a cached answer's first caller had read.

    Raises:
        _LimitReached: the run is out of steps, tokens or time.
        BackendProtocolError: the stream ended without a completion.
    """
    run.limits.check_steps(run.trace.steps)
    run.limits.check_tokens(run.trace.usage)
    step = run.trace.steps + 1
    started = time.perf_counter()
    completion: Completion | None = None
    timed_out = False
    # The backend sees what the run has read (a model-call cache stores it
    # with the answer, so a replayed answer keeps its provenance).
    attributes = turn_attributes(backend, request, step, role, selection)
    with reading(run.reads.sources), tracing.span(f"chat {backend.name}", attributes) as span:
        chunks = backend.stream(request)
        try:
            while completion is None:
                try:
                    chunk = await asyncio.wait_for(anext(chunks), run.limits.remaining())
                except StopAsyncIteration:
                    break
                except (TimeoutError, _LimitReached):
                    timed_out = True
                    break
                if chunk.delta:
                    yield TextDelta(step=step, delta=chunk.delta)
                completion = chunk.completion
        finally:
            await chunks.aclose()
        if timed_out:
            # Recorded here, not by the stop signal passing through the span:
            # the trace names the limit, never the run's private exception.
            span.set("error.type", "timeout")
            span.fail(f"timeout: agent {run.agent.name!r} reached its time limit mid-turn")
        elif completion is None:
            # The backend broke its protocol (no model output is at fault), as
            # Backend.complete() reports the same case.
            raise BackendProtocolError(
                f"backend {backend.name!r} ended its stream without a completion"
            )
        else:
            span.set_attributes(response_attributes(completion))
    if timed_out:
        raise _LimitReached("timeout")
    assert completion is not None  # a stream without one raised BackendProtocolError above
    for source in completion.sources:  # a cached answer: what its first caller had read
        run.reads.read(source, "cached model reply")
    record_turn(run, step, role, backend, request, completion, selection, started)
    yield completion


def turn_attributes(
    backend: Backend,
    request: ChatRequest,
    step: int,
    role: Role,
    selection: SelectionDecision | None,
) -> dict[str, Any]:
    attributes = {
        **chat_attributes(backend.name, request),
        "plait.agent.step": step,
        "plait.agent.role": role,
    }
    if selection is not None:
        attributes["plait.tool_selection.policy"] = selection.policy
        attributes["plait.tool_selection.offered"] = list(selection.offered)
        if selection.fixed is not None:
            attributes["plait.tool_selection.fixed"] = selection.fixed
        if selection.margin is not None:
            attributes["plait.tool_selection.margin"] = selection.margin
    return attributes


def record_turn(
    run: AgentRun,
    step: int,
    role: Role,
    backend: Backend,
    request: ChatRequest,
    completion: Completion,
    selection: SelectionDecision | None,
    started: float,
    *,
    vote: ToolVote | None = None,
) -> None:
    """Add one model turn to the run's trace: its usage, cost, calls and decisions."""
    cost = backend_price(backend, run.agent.prices).cost(completion.usage)
    run.trace.usage = run.trace.usage + completion.usage
    run.trace.cost += cost
    run.trace.turns.append(
        ModelTurn(
            step=step,
            role=role,
            backend=backend.name,
            text=completion.text,
            tool_calls=completion.tool_calls,
            offered_tools=tuple(t.name for t in request.tools),
            selection=selection,
            vote=vote,
            finish_reason=completion.finish_reason,
            usage=completion.usage,
            cost=cost,
            duration_s=time.perf_counter() - started,
        )
    )
