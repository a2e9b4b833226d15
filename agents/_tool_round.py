"""One tool round of an agent run: the model's calls through the run's tool runner, recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from plait.completions import Completion
from plait.errors import ToolArgumentError
from plait.tools import ToolOutcome

from ._trace import AgentEvent, ToolFinished, ToolRecord, ToolStarted

if TYPE_CHECKING:
    from ._loop import AgentRun

__all__ = ["call_tools"]


async def call_tools(run: AgentRun, completion: Completion) -> AsyncIterator[AgentEvent]:
    """Run the calls of ``completion``; the model reads each result (or its placeholder).

    Every call goes through the run's :class:`~plait.tools.ToolRunner`
    (permissions, limits, policies against what the run has read).

    Raises:
        ToolArgumentError: the model made more invalid calls than
            ``argument_retries`` allows.
    """
    step = run.trace.steps
    run.messages.append(completion.message)
    for call in completion.tool_calls:
        yield ToolStarted(step=step, call=call)
    calls, carried = run.reads.resolve(completion.tool_calls, step)
    outcomes = await run.limits.bounded(
        run.runner.run_all(
            calls,
            agent=run.agent.name,
            sources=run.reads.sources,
            trail=run.reads.trail,
            argument_sources=carried,
        )
    )
    for outcome in outcomes:
        if outcome.violation is not None:
            run.trace.violations.append(outcome.violation)
        record = _record(step, outcome)
        run.trace.tool_calls.append(record)
        run.messages.append(run.reads.admit(outcome, carried.get(outcome.call.id), step))
        yield ToolFinished(step=step, record=record)
    run.tool_rounds += 1
    bad = [o for o in outcomes if o.error in ("arguments", "unknown_tool")]
    run.invalid_calls += len(bad)
    allowed = run.limits.limits.argument_retries
    if bad and run.invalid_calls > allowed:
        raise ToolArgumentError(
            bad[-1].call.name,
            f"{bad[-1].content} (agent {run.agent.name!r} made {run.invalid_calls} "
            f"invalid tool calls; the limit is {allowed})",
        )


def _record(step: int, outcome: ToolOutcome) -> ToolRecord:
    return ToolRecord(
        step=step,
        call_id=outcome.call.id,
        name=outcome.call.name,
        arguments=outcome.call.arguments,
        result=outcome.content,
        error=outcome.error,
        duration_s=outcome.duration_s,
        truncated=outcome.truncated,
    )
