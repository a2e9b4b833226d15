"""``Supervisor``: decompose a goal, design roles, hire workers, review, aggregate.

The flow follows HALO (plan -> role design -> inference agents) and HASHIRU
(a manager hiring workers under a cost model, local models first):

1. a planning call (structured output :class:`TeamPlan`) splits the goal into
   subtasks, each with a designed role or a registered agent;
2. each subtask is hired out in plan order on the cheapest backend tier that
   fits the budget; when none fits, hiring stops and the run ends partial;
3. workers run through a :data:`Dispatch` (in parallel where subtasks are
   independent; :func:`plait.graphs.dag_dispatch` runs them on the DAG executor);
4. each result is reviewed: accept, retry with feedback, or reassign to a
   stronger tier; released workers give back their share of the pinned team prefix;
5. accepted results are aggregated into one answer.

Every decision lands in the :class:`TeamTrace`. Workers' tool calls answer to
the team's policies; in plan-then-execute mode no model decides anything (a
review verdict, the answer's wording) from a result that rests on untrusted
data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from plait._sync import run_sync
from plait.backends import Backend
from plait.backends.routing import CostLedger
from plait.errors import ConfigError
from plait.policies import Policy, PolicySet

from ._agent import AgentLimits
from ._runnable import Runnable, by_name
from ._team_dispatch import Dispatch, Reviewer, gather_dispatch
from ._team_plan import TeamPlan
from ._team_run import TeamRun
from ._team_trace import TeamDecision, TeamResult

__all__ = ["Supervisor", "TeamMode"]

TeamMode = Literal["default", "plan_then_execute"]
"""How a team treats worker results resting on untrusted data (see :class:`Supervisor`)."""


class Supervisor:
    """A manager agent that hires, checks and combines workers to reach a goal.

    Args:
        name: the supervisor's name (in traces; its own model calls are billed under it).
        backend: the model that plans, reviews (unless ``reviewer`` is given) and aggregates.
        workers: backend tiers for hired workers, cheapest (local) first.
        brief: the team brief, first in every prompt of the team (a shared,
            pinned KV prefix on the local backend).
        agents: registered agents (or nested supervisors, ensembles) the plan may delegate to.
        reviewer: a backend for an agent reviewer, a :data:`Reviewer` policy, or
            ``None`` to accept every answer unreviewed.
        ledger: prices and the budget cap (share one between nested supervisors
            to cap them together); default: free and unlimited.
        dispatch: how workers run (default :func:`gather_dispatch`).
        max_attempts: runs per subtask, retries and reassignments included.
        max_depth: nesting limit; a supervisor below it refuses to run.
        worker_limits: limits of each hired worker.
        expected_turns: worker turns the cost model plans for.
        aggregate: combine results with a model call; ``False`` joins them as text.
        temperature: sampling temperature of every call of the team.
        on_decision: called with each decision as it is taken (live progress);
            every decision is in the result's trace either way.
        policies: which sources may reach which tool
            (:class:`~plait.policies.Policy`), checked on every tool call of
            every worker (hired or registered, nested teams included) against
            what it read: the goal, the results it needs, its own tool results.
            Refused calls are in ``TeamResult.violations``.
        mode: ``"plan_then_execute"`` keeps results that rest on untrusted
            sources away from the team's control decisions: the plan is written
            from the goal alone (as always, before any worker runs); a model
            reviewer never reads such a result (it is accepted unreviewed, and
            the decision says why), and the aggregator sees a placeholder it
            may place as ``${id}``, filled in afterwards. Such results still
            reach the answer text and the workers that need them (as data,
            their tool calls gated by ``policies``).
    """

    def __init__(
        self,
        name: str,
        backend: Backend,
        *,
        workers: Sequence[Backend] = (),
        brief: str = "",
        agents: Sequence[Runnable] = (),
        reviewer: Backend | Reviewer | None = None,
        ledger: CostLedger | None = None,
        dispatch: Dispatch | None = None,
        max_attempts: int = 3,
        max_depth: int = 2,
        worker_limits: AgentLimits | None = None,
        expected_turns: int = 1,
        aggregate: bool = True,
        temperature: float | None = None,
        instructions: str = "",
        on_decision: Callable[[TeamDecision], None] | None = None,
        policies: PolicySet | Iterable[Policy] | None = None,
        mode: TeamMode = "default",
    ) -> None:
        if not name:
            raise ConfigError("a supervisor needs a non-empty name")
        if mode not in ("default", "plan_then_execute"):
            raise ConfigError(
                f"supervisor {name!r}: mode must be 'default' or 'plan_then_execute', got {mode!r}"
            )
        if max_attempts < 1 or max_depth < 0:
            raise ConfigError(
                f"supervisor {name!r}: max_attempts must be >= 1 and max_depth >= 0,"
                f" got {max_attempts} and {max_depth}"
            )
        self.name = name
        self.instructions = (
            instructions or f"A team led by {name} that splits a goal and delegates."
        )
        self.backend = backend
        self.workers = tuple(workers) or (backend,)
        self.brief = brief
        self.agents = by_name(f"supervisor {name!r}", agents)
        self.reviewer = reviewer
        self.ledger = ledger if ledger is not None else CostLedger()
        self.dispatch = dispatch or gather_dispatch
        self.max_attempts = max_attempts
        self.max_depth = max_depth
        self.worker_limits = worker_limits or AgentLimits(max_steps=4)
        self.expected_turns = expected_turns
        self.aggregate = aggregate
        self.temperature = temperature
        self.on_decision = on_decision
        self.policies = policies if isinstance(policies, PolicySet) else PolicySet(policies or ())
        self.mode: TeamMode = mode

    def __repr__(self) -> str:
        tiers = [b.name for b in self.workers]
        return f"Supervisor({self.name!r}, workers={tiers}, agents={list(self.agents)})"

    async def arun(self, task: str, *, plan: TeamPlan | None = None) -> TeamResult:
        """Reach the goal ``task`` with a team; ``plan`` skips the planning call."""
        return await TeamRun(self, task).execute(plan)

    def run(self, task: str, *, plan: TeamPlan | None = None) -> TeamResult:
        """Blocking :meth:`arun`, for code that has no event loop running."""
        return run_sync(
            self.arun(task, plan=plan), name="Supervisor.run()", instead="await supervisor.arun()"
        )
