"""What a team run leaves behind: every decision, each worker's spend, the result."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plait.completions import Usage
from plait.policies import Violation
from plait.provenance import Source

__all__ = ["DecisionKind", "TeamDecision", "TeamResult", "TeamStop", "TeamTrace", "WorkerReport"]

DecisionKind = Literal[
    "plan",
    "role",
    "hire",
    "skip_hire",
    "review",
    "retry",
    "escalate",
    "release",
    "depth_limit",
    "aggregate",
    "generate",
    "rank",
    "fuse",
    "critique",
    "verify",
    "vote",
    "route",
]
"""The kinds of decision a team or an ensemble records."""

TeamStop = Literal["done", "budget", "depth", "failed"]
"""Why a team run ended: all subtasks accepted, or what stopped it short."""


class TeamDecision(BaseModel):
    """One decision, in the order it was taken.

    Attributes:
        kind: what was decided (role design, hiring, review verdict, vote...).
        by: who decided (the supervisor's or ensemble's name).
        subject: what it was about (a subtask id, a candidate, an agent name).
        detail: the decision in words: the reason, the verdict, the feedback.
        backend: the backend concerned (hiring, escalation), if any.
        cost: estimated or real cost attached to the decision (hiring: estimate).
        at: Unix time.
    """

    model_config = ConfigDict(frozen=True)

    kind: DecisionKind
    by: str
    subject: str = ""
    detail: str = ""
    backend: str | None = None
    cost: float = 0.0
    at: float = Field(default_factory=time.time)


class WorkerReport(BaseModel):
    """One hired worker: what it did, on which backends, and what it cost.

    Attributes:
        subtask: the subtask id.
        worker: the worker's agent name (spend is booked under it).
        role: the role's instructions, or the registered agent it delegated to.
        backends: backends it ran on, in order (escalation appends).
        attempts: runs, retries and reassignments included.
        status: ``accepted``, ``rejected`` (reviews never passed), ``failed``
            (the run raised or hit a limit), ``not_hired`` (budget or depth).
        output: the last output (accepted or not).
        cost: money spent by its model calls.
        usage: tokens over its runs.
        child: the trace of a nested supervisor, when the worker was one.
    """

    model_config = ConfigDict(frozen=True)

    subtask: str
    worker: str
    role: str
    backends: tuple[str, ...] = ()
    attempts: int = 0
    status: Literal["accepted", "rejected", "failed", "not_hired"]
    output: str = ""
    cost: float = 0.0
    usage: Usage = Usage()
    child: TeamTrace | None = None


class TeamTrace(BaseModel):
    """Everything a team run decided, in order; JSON with ``model_dump_json()``.

    Attributes:
        team: the supervisor's name.
        goal: what it was asked.
        depth: nesting depth (0: the top supervisor).
        decisions: every decision in order.
        workers: one report per subtask.
        total_cost: money spent by every worker model call (planning and review
            calls go through the supervisor's own backend and are not billed here).
        budget: the run's cap, if any.
        stop_reason: ``done`` or what stopped the run short.
        reason: the stop reason in words.
        duration_s: wall-clock seconds.
    """

    team: str
    goal: str
    depth: int = 0
    decisions: list[TeamDecision] = Field(default_factory=list)
    workers: list[WorkerReport] = Field(default_factory=list)
    total_cost: float = 0.0
    budget: float | None = None
    stop_reason: TeamStop = "done"
    reason: str = ""
    duration_s: float = 0.0

    def of_kind(self, kind: DecisionKind) -> list[TeamDecision]:
        """The decisions of one kind, in order."""
        return [d for d in self.decisions if d.kind == kind]


@dataclass(frozen=True)
class TeamResult:
    """How a team run ended.

    Attributes:
        output: the aggregated answer (partial when ``stop_reason`` is not ``done``).
        stop_reason: ``done``, ``budget``, ``depth`` or ``failed``.
        reason: why, in words (empty when done).
        trace: the structured team trace.
        sources: what the workers read (their tasks, memories, tool results):
            what the answer rests on.
        violations: workers' tool calls a policy refused.
    """

    output: str
    stop_reason: TeamStop
    reason: str
    trace: TeamTrace
    sources: frozenset[Source] = frozenset()
    violations: tuple[Violation, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every subtask was accepted."""
        return self.stop_reason == "done"

    @property
    def text(self) -> str:
        """The answer text (same as ``output``)."""
        return self.output

    @property
    def spend_by_worker(self) -> dict[str, float]:
        """Cost per worker name."""
        return {w.worker: w.cost for w in self.trace.workers}

    def results(self) -> dict[str, Any]:
        """Accepted outputs per subtask id."""
        return {w.subtask: w.output for w in self.trace.workers if w.status == "accepted"}
