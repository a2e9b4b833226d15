"""A model turn that draws k candidates for its call and runs the one the vote picks.

The k requests go out together: the local engine admits requests that arrive
together with one prompt as one prefill and forks the rest from it, then
decodes them in one batch; a remote backend gets k parallel requests. The turn
in the trace is the winner's, with the vote beside it and every candidate's
tokens in its usage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from plait import tracing
from plait._span_attributes import response_attributes
from plait.backends import Backend
from plait.chat import ChatRequest
from plait.completions import Completion, Usage
from plait.errors import ModelOutputError
from plait.provenance import reading
from plait.tools import SelectionDecision, Toolset

from ._model_turn import record_turn, turn_attributes
from ._run_limits import _LimitReached
from ._tool_vote import candidate_of, sampled_requests, vote_attributes, vote_calls
from ._trace import Role

if TYPE_CHECKING:
    from ._loop import AgentRun

__all__ = ["sampled_turn"]


async def _candidate(backend: Backend, request: ChatRequest) -> Completion | ModelOutputError:
    try:
        return await backend.complete(request)
    except ModelOutputError as e:  # cut off or unparseable: this candidate drops out
        return e


async def sampled_turn(
    run: AgentRun,
    backend: Backend,
    request: ChatRequest,
    role: Role,
    selection: SelectionDecision | None,
    *,
    k: int,
    tools: Toolset,
    settle: Callable[[Completion], Completion],
) -> Completion:
    """One model turn of ``k`` candidates; the winner's completion, its calls settled.

    ``settle`` turns each candidate's completion into the calls that would
    run (:func:`~._selection.settle_calls`); candidates are compared as settled.

    Raises:
        _LimitReached: the run is out of steps, tokens or time.
        ModelOutputError: every candidate failed (the first one's error).
    """
    run.limits.check_steps(run.trace.steps)
    run.limits.check_tokens(run.trace.usage)
    step = run.trace.steps + 1
    started = time.perf_counter()
    attributes = turn_attributes(backend, request, step, role, selection)
    attributes["plait.tool_sampling.k"] = k
    with reading(run.reads.sources), tracing.span(f"chat {backend.name}", attributes) as span:
        tasks = [
            asyncio.ensure_future(_candidate(backend, r)) for r in sampled_requests(request, k)
        ]
        try:
            outcomes = await asyncio.wait_for(asyncio.gather(*tasks), run.limits.remaining())
        except (TimeoutError, _LimitReached):
            span.set("error.type", "timeout")
            span.fail(f"timeout: agent {run.agent.name!r} reached its time limit mid-turn")
            raise _LimitReached("timeout") from None
        finally:
            # A backend error in one candidate leaves the others running: stop them.
            for task in tasks:
                task.cancel()
        done = [o for o in outcomes if isinstance(o, Completion)]
        settled = [settle(o) if isinstance(o, Completion) else None for o in outcomes]
        schemas = {t.name: t.parameters for t in tools}
        decided = vote_calls(
            [None if c is None else candidate_of(c) for c in settled], run.task, schemas
        )
        if decided is None:
            error = next(o for o in outcomes if isinstance(o, ModelOutputError))
            span.fail(error)
            raise error
        winner = settled[decided.winner]
        raw = outcomes[decided.winner]
        assert winner is not None and isinstance(raw, Completion)
        usage = sum((c.usage for c in done), Usage())
        span.set_attributes(response_attributes(raw.model_copy(update={"usage": usage})))
        span.set_attributes(vote_attributes(decided))
        for i, key in enumerate(decided.candidates):
            span.add_event(
                "plait.tool_sampling.candidate",
                {"index": i, "calls": key or "(failed)", "won": i == decided.winner},
            )
    for source in raw.sources:  # a cached answer: what its first caller had read
        run.reads.read(source, "cached model reply")
    # The trace keeps what the winner wrote; its usage is every candidate's.
    record_turn(
        run,
        step,
        role,
        backend,
        request,
        raw.model_copy(update={"usage": usage}),
        selection,
        started,
        vote=decided,
    )
    return winner.model_copy(update={"usage": usage})
