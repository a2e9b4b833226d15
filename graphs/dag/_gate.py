"""The policy gate: what a task's arguments carry, and whether the policies let it run.

One place decides, before a task runs, where each of its arguments came from
(the plan's own sources and those of every result it references), which
policies that breaks, and the path each offending source took to get there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from plait import tracing
from plait.errors import PolicyViolation
from plait.policies import PolicyAction, PolicySet, Violation, strictest
from plait.provenance import USER, Source

from ._events import EventLog, TaskOutcome, TaskStatus, task_outcome
from ._references import find_references
from ._scheduling import Schedule, TaskNode

__all__ = ["GateDecision", "PolicyGate"]


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What the gate found for one task.

    Attributes:
        read: every source the task's arguments carry (what its result derives from).
        action: the strictest action of the policies it broke (``None``: none).
        refusal: the outcome of a task the policies stop (fail or drop), else ``None``.
    """

    read: frozenset[Source]
    action: PolicyAction | None = None
    refusal: TaskOutcome | None = None


class PolicyGate:
    """Checks each task of one execution against the executor's policies.

    Args:
        policies: the executor's policies.
        schedule: the execution's tasks (whose outcomes carry their sources).
        events: where ``blocked`` events go.
        sources: where the plan's literal arguments came from (default: the user).
    """

    __slots__ = ("base", "events", "policies", "schedule", "violations")

    def __init__(
        self,
        policies: PolicySet,
        schedule: Schedule,
        events: EventLog,
        sources: Iterable[Source] | None = None,
    ) -> None:
        self.policies = policies
        self.schedule = schedule
        self.events = events
        self.base = frozenset((USER,) if sources is None else sources)
        self.violations: list[Violation] = []  # the execution's, agents' tool calls included

    def decide(self, node: TaskNode) -> GateDecision:
        """What ``node``'s arguments carry and what the policies make of it.

        Every violation is recorded (the run's list, a ``blocked`` event, the span).
        """
        per_argument = self.argument_sources(node)
        read = self.base.union(*per_argument.values())
        policies = self.policies
        if not policies or not policies.guards(node.task.tool):
            return GateDecision(read)
        violations = self.check(node, per_argument)
        if not violations:
            return GateDecision(read)
        task = node.task
        for violation in violations:
            self.violations.append(violation)
            self.events.emit("blocked", task, error=violation.message)
            tracing.add_event("plait.policy.violation", {"error": violation.message})
        action = strictest(violations)
        if action not in ("fail", "drop"):
            return GateDecision(read, action)
        worst = next(v for v in violations if v.action == action)
        status: TaskStatus = "failed" if action == "fail" else "skipped"
        refusal = task_outcome(
            task,
            status,
            error=worst.message,
            exception=PolicyViolation(worst),
            sources=read,
            violation=worst,
        )
        return GateDecision(read, action, refusal)

    def argument_sources(self, node: TaskNode) -> dict[str, frozenset[Source]]:
        """Each argument's sources: the plan's own, plus those of every result it references."""
        nodes = self.schedule.nodes
        per_argument = {}
        for name, value in node.task.args.items():
            sources = set(self.base)
            for dep in find_references(value) & node.dependencies:
                outcome = nodes[dep].outcome
                if outcome is not None:
                    sources.update(outcome.sources)
            per_argument[name] = frozenset(sources)
        return per_argument

    def check(self, node: TaskNode, per_argument: dict[str, frozenset[Source]]) -> list[Violation]:
        """The policies ``node`` breaks, each with the path its first offending source took."""
        found = []
        for violation in self.policies.check(node.task.tool, per_argument, whole=self.base):
            if violation.argument is not None:
                carried = per_argument[violation.argument] | self.base
            else:
                carried = self.base.union(*per_argument.values())
            first = next(s for s in sorted(carried, key=str) if str(s) in violation.offending)
            path = self.trail_into(node, violation.argument, first)
            found.append(violation.model_copy(update={"task_id": node.task.id, "path": path}))
        return found

    def trail(self, task_id: str, source: Source) -> list[str]:
        """The tasks ``source`` passed through to reach ``task_id``, origin first."""
        nodes = self.schedule.nodes
        node = nodes[task_id]
        label = f"{task_id} ({node.task.tool})"
        for dep in sorted(node.dependencies):
            outcome = nodes[dep].outcome
            if outcome is not None and source in outcome.sources:
                return [*self.trail(dep, source), label]
        # No dependency brought it: the task itself read it (or the plan holds it).
        return [f"plan ({source})", label] if source in self.base else [label]

    def trail_into(self, node: TaskNode, argument: str | None, source: Source) -> tuple[str, ...]:
        """The path ``source`` took into ``argument`` of ``node`` (``None``: any argument)."""
        values = node.task.args.values() if argument is None else [node.task.args[argument]]
        refs = set().union(*(find_references(v) for v in values)) & node.dependencies
        label = f"{node.task.id} ({node.task.tool})"
        nodes = self.schedule.nodes
        for dep in sorted(refs):
            outcome = nodes[dep].outcome
            if outcome is not None and source in outcome.sources:
                return (*self.trail(dep, source), label)
        return (f"plan ({source})", label)
