"""Joining a round: the joiner reads the results and answers or asks for a new plan.

In plan-then-execute mode (``quarantine``) untrusted results are withheld from
the joiner; it may only place one in its answer as ``$n``, filled in here, and
the answer's sources say so.
"""

from __future__ import annotations

import json
import re

from plait import tracing
from plait._span_attributes import chat_attributes, response_attributes
from plait.backends import Backend
from plait.provenance import USER, Source, untrusted

from ..dag import Plan, RunResult
from ._prompts import decision, joiner_request
from ._rounds import Joined

__all__ = ["join", "shown_sources"]

# A reference to a task in the joiner's answer ("$2"), in plan-then-execute mode.
_ANSWER_REFERENCE = re.compile(r"\$([1-9][0-9]*)\b")


def shown_sources(run: RunResult, *, quarantine: bool) -> frozenset[Source]:
    """The sources of the results the joiner (and a replanner) read from ``run``."""
    return frozenset(
        s
        for o in run.outcomes.values()
        if not (quarantine and untrusted(o.sources))
        for s in o.sources
    )


async def join(
    joiner: Backend, question: str, plan: Plan, run: RunResult, *, quarantine: bool
) -> Joined:
    """Ask ``joiner`` about ``run``; its decision, with the answer's sources."""
    request = joiner_request(question, plan, run, quarantine=quarantine)
    with tracing.span("plait.join", chat_attributes(joiner.name, request)) as span:
        completion = await joiner.complete(request)
        span.set_attributes(response_attributes(completion))
    action, text = decision(completion)
    sources = {USER, *shown_sources(run, quarantine=quarantine)}
    if not quarantine:
        return Joined(
            run=run,
            action=action,
            answer=text,
            usage=completion.usage,
            sources=frozenset(sources),
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
    return Joined(
        run=run,
        action=action,
        answer=answer,
        usage=completion.usage,
        sources=frozenset(sources),
        template=text,
    )
