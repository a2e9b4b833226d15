"""An agent run's final answer: withheld results filled in, validated, re-asked if it misfits."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import ValidationError

from plait.errors import ModelOutputError
from plait.messages import AssistantMessage, UserMessage

from ._prompts import render

if TYPE_CHECKING:
    from ._loop import AgentRun

__all__ = ["accept_answer"]


def accept_answer(run: AgentRun, written: str) -> bool:
    """Take ``written`` as the run's answer; False (a re-ask queued) when it does not fit.

    ``written`` is the answer as the model wrote it (before withheld results
    are filled in): a re-ask shows it that, never what it did not read.

    Raises:
        ModelOutputError: the answer still does not match the output type
            after ``output_retries`` re-asks.
    """
    run.text = run.reads.fill(written, structured=run.adapter is not None)
    if run.adapter is None:
        run.output = run.text
        return True
    try:
        run.output = run.adapter.validate_json(run.text)
        return True
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(answer)'}: {err['msg']}"
            for err in e.errors()
        )
    run.repairs += 1
    retries = run.limits.limits.output_retries
    if run.repairs > retries:
        raise ModelOutputError(
            f"agent {run.agent.name!r}: the answer does not match "
            f"{getattr(run.agent.output_type, '__name__', 'the output type')} after "
            f"{retries} re-ask(s) ({problems})",
            raw=run.text,
        )
    run.messages.append(AssistantMessage(content=written))
    run.messages.append(
        UserMessage(
            content=render("output_repair", problems=problems, schema=json.dumps(run.schema))
        )
    )
    return False
