"""One supervisor run: planning, hiring, workers with review (aggregation: ``_team_combine``).

Kept apart from :class:`~plait.agents.Supervisor` (the configuration) because a
run has state: hires, pins, reports, the decision log and why it stopped.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plait.backends import Backend
from plait.completions import Usage
from plait.errors import BudgetExceeded, RunError, WorkerFailed
from plait.policies import Violation, enforcing
from plait.provenance import USER, Source, current, describe, reading, untrusted

from ._agent import Agent
from ._hiring import Hire, Hiring, LedgerRouter, TeamPrefix
from ._prompts import render
from ._team_combine import combine_results
from ._team_plan import DraftPlan, Review, RoleSpec, Subtask, TeamPlan
from ._team_trace import DecisionKind, TeamDecision, TeamResult, TeamStop, TeamTrace, WorkerReport

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = ["TeamRun"]

# Nesting depth of the running supervisor and the tightest limit of its ancestors;
# contextvars follow asyncio tasks, so the depth survives any dispatcher.
_DEPTH: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "plait_team_depth", default=None
)


class TeamRun:
    """The state of one supervisor run."""

    def __init__(self, sup: Supervisor, goal: str) -> None:
        self.sup = sup
        self.goal = goal
        outer = _DEPTH.get()
        self.depth = 0 if outer is None else outer[0] + 1
        self.limit = sup.max_depth if outer is None else min(outer[1], sup.max_depth)
        self.trace = TeamTrace(team=sup.name, goal=goal, depth=self.depth, budget=sup.ledger.budget)
        self.hiring = Hiring(
            sup.workers,
            sup.ledger,
            expected_turns=sup.expected_turns,
            turn_tokens=sup.worker_limits.max_turn_tokens,
        )
        self.prefix = TeamPrefix(sup.brief)
        self.reports: dict[str, WorkerReport] = {}
        self.hires: dict[str, tuple[RoleSpec, Hire]] = {}
        self.stop: TeamStop = "done"
        self.reason = ""
        self.started = time.perf_counter()
        self.sources: set[Source] = set()  # what the workers read: the answer rests on it
        # The goal's sources: the task of the executor this team runs in, else the user's.
        given = current()
        self.base: frozenset[Source] = given if given is not None else frozenset({USER})
        self.result_sources: dict[str, frozenset[Source]] = {}  # per subtask, last attempt
        self.violations: list[Violation] = []
        self.quarantine = sup.mode == "plan_then_execute"

    def decide(self, kind: DecisionKind, subject: str = "", detail: str = "", **kw: Any) -> None:
        decision = TeamDecision(kind=kind, by=self.sup.name, subject=subject, detail=detail, **kw)
        self.trace.decisions.append(decision)
        if self.sup.on_decision is not None:
            self.sup.on_decision(decision)

    def stop_short(self, stop: TeamStop, reason: str) -> None:
        if self.stop == "done":  # the first reason is the one that matters
            self.stop, self.reason = stop, reason

    def agent(self, name: str, instructions: str, backend: Backend, **kw: Any) -> Agent[Any]:
        booked = LedgerRouter(backend, self.sup.ledger, f"team {self.sup.name}: {name}")
        return Agent(
            name,
            instructions,
            booked,
            shared_context=self.sup.brief,
            temperature=self.sup.temperature,
            **kw,
        )

    async def execute(self, plan: TeamPlan | None) -> TeamResult:
        if self.depth > self.limit:
            reason = f"nesting depth {self.depth} is over the limit of {self.limit}"
            self.decide("depth_limit", self.sup.name, reason)
            self.stop_short("depth", reason)
            return self.finish("")
        token = _DEPTH.set((self.depth, self.limit))
        try:
            if plan is None:
                plan = await self.make_plan()
                if plan is None:
                    return self.finish("")
            else:
                self.decide("plan", self.sup.name, "given: " + _listing(plan))
            hired = await self.hire_all(plan)
            try:
                await self.sup.dispatch(hired, self.work)
            finally:
                await self.prefix.release_all()
            for sub in plan.subtasks:
                if sub.id not in self.reports:
                    self.reports[sub.id] = WorkerReport(
                        subtask=sub.id,
                        worker="",
                        role="",
                        status="failed",
                        output="a subtask it needs was not accepted",
                    )
            self.trace.workers = [self.reports[s.id] for s in plan.subtasks]
            failed = [w.subtask for w in self.trace.workers if w.status in ("failed", "rejected")]
            if failed:
                self.stop_short("failed", f"subtask(s) {', '.join(failed)} were not accepted")
            return self.finish(await combine_results(self, plan))
        finally:
            _DEPTH.reset(token)

    async def make_plan(self) -> TeamPlan | None:
        listing = "\n".join(
            f"- {n}: {a.instructions.strip()[:160]}" for n, a in self.sup.agents.items()
        )
        agents = "\n\n" + render("team_planner_agents", listing=listing) if listing else ""
        planner = self.agent(
            f"{self.sup.name}-planner",
            render("team_planner", agents=agents),
            self.sup.backend,
            output_type=DraftPlan,
        )
        try:
            result = await planner.arun(f"Goal: {self.goal}")
        except BudgetExceeded as e:
            self.decide("plan", self.sup.name, f"no plan: {e}")
            self.stop_short("budget", f"planning was refused by the budget: {e}")
            return None
        except RunError as e:  # a usage error (misconfigured planner) surfaces instead
            self.decide("plan", self.sup.name, f"no plan: {e}")
            self.stop_short("failed", f"the planner gave no usable plan: {e}")
            return None
        if not result.ok or result.output is None:
            self.decide(
                "plan", self.sup.name, f"no plan: the planner stopped ({result.stop_reason})"
            )
            self.stop_short("failed", f"the planner stopped early: {result.stop_reason}")
            return None
        plan, fixes = result.output.repair()
        fixed = f" (fixed: {'; '.join(fixes)})" if fixes else ""
        self.decide("plan", self.sup.name, _listing(plan) + fixed)
        return plan

    async def hire_all(self, plan: TeamPlan) -> list[Subtask]:
        """Design or pick a role per subtask and hire in plan order until the budget says stop."""
        hired: list[Subtask] = []
        for sub in plan.subtasks:
            if self.stop == "budget":
                self.not_hired(sub, "hiring stopped: " + self.reason)
                continue
            registered = self.sup.agents.get(sub.agent) if sub.agent else None
            if registered is not None:
                # Anything with a nesting limit runs a team below this one.
                nests = hasattr(registered, "max_depth")
                if nests and self.depth + 1 > self.limit:
                    why = (
                        f"{registered.name} is a supervisor and depth {self.depth + 1}"
                        f" is over {self.limit}"
                    )
                    self.decide("depth_limit", sub.id, why)
                    self.stop_short("depth", why)
                    self.not_hired(sub, why)
                    continue
                self.decide("role", sub.id, f"delegated to registered agent {registered.name}")
                hired.append(sub)
                continue
            if sub.agent:
                self.decide(
                    "role", sub.id, f"unknown agent {sub.agent!r}: a role is designed instead"
                )
            role = sub.role or RoleSpec(name="worker", instructions="Do the task well and briefly.")
            self.decide("role", sub.id, f"{role.name}: {role.instructions}")
            hire, skipped = self.hiring.choose(
                len(self.sup.brief) + len(role.instructions) + len(sub.task),
                start_tier=1 if sub.hard and len(self.sup.workers) > 1 else 0,
            )
            if hire is None:
                why = "; ".join(skipped) or "no worker tier fits"
                self.decide("skip_hire", sub.id, why)
                self.stop_short(
                    "budget", f"subtask {sub.id} could not be hired within budget: {why}"
                )
                self.not_hired(sub, "hiring stopped: " + self.reason)
                continue
            reason = (
                "hard subtask: skipped the cheapest tier" if hire.tier else "cheapest tier first"
            )
            if skipped:
                reason += "; " + "; ".join(skipped)
            self.decide("hire", sub.id, reason, backend=hire.backend.name, cost=hire.estimate)
            self.hires[sub.id] = (role, hire)
            await self.prefix.acquire(hire.backend)
            hired.append(sub)
        return hired

    def not_hired(self, sub: Subtask, why: str) -> None:
        self.reports[sub.id] = WorkerReport(
            subtask=sub.id,
            worker="",
            role=sub.agent or (sub.role.name if sub.role else ""),
            status="not_hired",
            output=why,
        )

    async def release(self, sub: Subtask, hire: Hire) -> None:
        self.hiring.finished(hire)
        unpinned = await self.prefix.release(hire.backend)
        detail = "worker released" + ("; team prefix unpinned" if unpinned else "")
        self.decide("release", sub.id, detail, backend=hire.backend.name)

    async def work(self, sub: Subtask, inputs: Mapping[str, str]) -> str:
        # A worker reads the goal's sources and those of the results it needs,
        # whichever dispatch runs it; its tool calls answer to the team's
        # policies on top of any the team itself runs under.
        read = self.base.union(*(self.result_sources.get(n, frozenset()) for n in sub.needs))
        with enforcing(self.sup.policies, self.violations):
            if sub.id in self.hires:
                return await self.work_hired(sub, inputs, read)
            return await self.work_registered(sub, inputs, read)

    def task_text(
        self, sub: Subtask, inputs: Mapping[str, str], previous: str, feedback: str
    ) -> str:
        parts = [sub.task]
        if inputs:
            listing = "\n".join(f"[{k}] {v}" for k, v in inputs.items())
            parts.append(render("team_worker_inputs", listing=listing))
        if feedback:
            parts.append(render("team_worker_feedback", previous=previous, feedback=feedback))
        return "\n\n".join(parts)

    async def work_hired(
        self, sub: Subtask, inputs: Mapping[str, str], read: frozenset[Source]
    ) -> str:
        role, hire = self.hires[sub.id]
        worker = f"{role.name}-{sub.id}"
        backends: list[str] = []
        previous = feedback = ""
        usage = None
        status = "rejected"
        try:
            for attempt in range(1, self.sup.max_attempts + 1):
                backends.append(hire.backend.name)
                agent = self.agent(
                    worker, role.instructions, hire.backend, limits=self.sup.worker_limits
                )
                try:
                    with reading(read):
                        result = await agent.arun(self.task_text(sub, inputs, previous, feedback))
                except BudgetExceeded as e:
                    self.stop_short("budget", f"worker {worker} was refused by the budget: {e}")
                    status, previous = "failed", f"budget: {e}"
                    break
                except RunError as e:
                    status, previous = "failed", f"{type(e).__name__}: {e}"
                    break
                usage = result.usage if usage is None else usage + result.usage
                self.sources.update(result.sources)
                self.result_sources[sub.id] = result.sources
                previous = result.text if result.output is None else str(result.output)
                if not result.ok:
                    review = Review(
                        verdict="retry", feedback=f"stopped early ({result.stop_reason})"
                    )
                else:
                    review = await self.review(sub, previous, result.sources)
                self.decide("review", sub.id, f"{review.verdict}: {review.feedback}".rstrip(": "))
                if review.verdict == "accept":
                    status = "accepted"
                    break
                if attempt == self.sup.max_attempts:
                    break
                feedback = review.feedback or "improve the answer"
                # The retry reads its previous answer (and feedback written about it).
                read = read | result.sources
                if review.verdict == "reassign":
                    escalated = self.escalate(sub, hire, worker)
                    if escalated is not None:
                        await self.release(sub, hire)
                        await self.prefix.acquire(escalated.backend)
                        hire = escalated
                        self.hires[sub.id] = (role, hire)
                        continue
                self.decide("retry", sub.id, feedback, backend=hire.backend.name)
        finally:
            await self.release(sub, hire)
        cost = self.sup.ledger.report().cost_by_agent.get(worker, 0.0)
        self.reports[sub.id] = WorkerReport(
            subtask=sub.id,
            worker=worker,
            role=f"{role.name}: {role.instructions}",
            backends=tuple(backends),
            attempts=len(backends),
            status=status,
            output=previous,
            cost=cost,
            usage=usage or Usage(),
        )
        if status != "accepted":
            raise WorkerFailed(f"subtask {sub.id} was {status}: {previous[:200]}")
        return previous

    def escalate(self, sub: Subtask, hire: Hire, worker: str) -> Hire | None:
        if hire.tier + 1 >= len(self.sup.workers):
            self.decide("escalate", sub.id, f"{worker}: no stronger tier than {hire.backend.name}")
            return None
        new, skipped = self.hiring.choose(
            len(self.sup.brief) + len(sub.task), start_tier=hire.tier + 1, replacing=hire
        )
        if new is None:
            why = "; ".join(skipped)
            self.decide("escalate", sub.id, f"{worker}: no stronger tier fits the budget: {why}")
            return None
        self.decide(
            "escalate",
            sub.id,
            f"{worker}: review failed on {hire.backend.name}",
            backend=new.backend.name,
            cost=new.estimate,
        )
        return new

    async def review(self, sub: Subtask, answer: str, sources: frozenset[Source]) -> Review:
        reviewer = self.sup.reviewer
        if reviewer is None:
            return Review(verdict="accept", feedback="no reviewer")
        if isinstance(reviewer, Backend):
            bad = untrusted(sources)
            if self.quarantine and bad:
                # A verdict is a control decision (retry, a stronger tier, feedback
                # into the next prompt): a model never makes it from untrusted text.
                return Review(
                    verdict="accept",
                    feedback=f"unreviewed: the answer rests on untrusted sources ({describe(bad)})",
                )
            agent = self.agent(
                f"{self.sup.name}-reviewer", render("team_reviewer"), reviewer, output_type=Review
            )
            with reading(self.base | sources):
                result = await agent.arun(render("team_review_task", task=sub.task, answer=answer))
            if not result.ok or result.output is None:
                return Review(verdict="retry", feedback=f"review failed ({result.stop_reason})")
            return result.output
        return await reviewer(sub, answer)

    async def work_registered(
        self, sub: Subtask, inputs: Mapping[str, str], read: frozenset[Source]
    ) -> str:
        runnable = self.sup.agents[sub.agent or ""]
        status, output, child = "failed", "", None
        try:
            with reading(read):
                result = await runnable.arun(self.task_text(sub, inputs, "", ""))
            output = str(result.output if result.output is not None else "")
            # A runnable that does not say what it read rests on its task at least.
            got = frozenset(getattr(result, "sources", ()) or read)
            self.sources.update(got)
            self.result_sources[sub.id] = got
            child = result.trace if isinstance(result, TeamResult) else None
            if result.stop_reason == "done":
                review = await self.review(sub, output, got)
                self.decide("review", sub.id, f"{review.verdict}: {review.feedback}".rstrip(": "))
                status = "accepted" if review.verdict == "accept" else "rejected"
            else:
                output = f"{runnable.name} stopped early: {result.stop_reason}"
        except RunError as e:
            output = f"{type(e).__name__}: {e}"
        cost = child.total_cost if child is not None else 0.0
        self.reports[sub.id] = WorkerReport(
            subtask=sub.id,
            worker=runnable.name,
            role=f"agent {runnable.name}",
            backends=(),
            attempts=1,
            status=status,
            output=output,
            cost=cost,
            child=child,
        )
        if status != "accepted":
            raise WorkerFailed(f"subtask {sub.id} was {status}: {output[:200]}")
        return output

    def finish(self, output: str) -> TeamResult:
        report = self.sup.ledger.report()
        self.trace.total_cost = report.total_cost
        self.trace.stop_reason = self.stop
        self.trace.reason = self.reason
        self.trace.duration_s = time.perf_counter() - self.started
        return TeamResult(
            output=output,
            stop_reason=self.stop,
            reason=self.reason,
            trace=self.trace,
            sources=frozenset(self.sources),
            violations=tuple(self.violations),
        )


def _listing(plan: TeamPlan) -> str:
    return ", ".join(f"{s.id}: {s.task[:80]}" for s in plan.subtasks)
