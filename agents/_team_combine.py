"""A team's answer from its accepted results: joined as text, or written by an aggregator.

In plan-then-execute mode a result resting on an untrusted source reaches the
aggregator only as a placeholder, filled into its answer afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from plait.errors import BudgetExceeded
from plait.provenance import describe, reading, untrusted

from ._prompts import render
from ._team_plan import TeamPlan

if TYPE_CHECKING:
    from ._team_run import TeamRun

__all__ = ["combine_results"]

# "${research}" in the aggregator's answer: a withheld subtask result (plan-then-execute).
_RESULT_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


async def combine_results(run: TeamRun, plan: TeamPlan) -> str:
    """The team's answer: accepted results joined as text, or combined by the aggregator.

    One accepted subtask (or ``aggregate=False``) is answered as text; else the
    aggregator agent writes the answer, and a budget refusal falls back to text.
    """
    accepted = [(w.subtask, w.output) for w in run.trace.workers if w.status == "accepted"]
    if not accepted:
        run.decide("aggregate", run.sup.name, "nothing to aggregate: no subtask was accepted")
        return ""
    listing = "\n".join(f"[{sid}] {out}" for sid, out in accepted)
    if not run.sup.aggregate or len(plan.subtasks) == 1 and run.stop == "done":
        run.decide("aggregate", run.sup.name, f"joined {len(accepted)} result(s) as text")
        return listing if len(accepted) > 1 else accepted[0][1]
    agent = run.agent(f"{run.sup.name}-aggregator", render("team_aggregator"), run.sup.backend)
    shown, withheld = _shown_results(run, accepted)
    try:
        read = [run.result_sources.get(i, frozenset()) for i in shown if i not in withheld]
        with reading(run.base.union(*read)):
            result = await agent.arun(
                render("team_aggregate_task", goal=run.goal, listing="\n".join(shown.values()))
            )
    except BudgetExceeded as e:
        run.decide(
            "aggregate", run.sup.name, f"budget refused the aggregation; joined as text: {e}"
        )
        run.stop_short("budget", f"aggregation was refused by the budget: {e}")
        return listing
    run.decide("aggregate", run.sup.name, f"combined {len(accepted)} result(s) with a model call")
    if not withheld:
        return result.text

    def fill(match: re.Match[str]) -> str:
        sid = match.group(1)
        return withheld[sid] if sid in withheld else match.group(0)

    return _RESULT_REFERENCE.sub(fill, result.text)


def _shown_results(
    run: TeamRun, accepted: Sequence[tuple[str, str]]
) -> tuple[dict[str, str], dict[str, str]]:
    """The aggregator's listing line per subtask, and the results it must not read.

    In plan-then-execute mode a result resting on an untrusted source is
    listed as a placeholder; the aggregator may place it as ``${id}``, and
    the answer is filled in afterwards, so the text an attacker wrote can
    reach the answer but never decide how it is written.
    """
    shown: dict[str, str] = {}
    withheld: dict[str, str] = {}
    for sid, out in accepted:
        bad = untrusted(run.result_sources.get(sid, frozenset()))
        if run.quarantine and bad:
            withheld[sid] = out
            shown[sid] = f"[{sid}] " + render("team_withheld", id=sid, origin=describe(bad))
        else:
            shown[sid] = f"[{sid}] {out}"
    return shown, withheld
