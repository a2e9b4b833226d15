"""Which tasks of an execution may start: dependency counts, skips and inputs.

Plain bookkeeping, no asyncio: :meth:`Schedule.add` takes a task as it
arrives, :meth:`Schedule.finish` records how one ended and returns the
dependants it made ready, and the execution starts (or skips) those at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from plait.errors import PlanError

from ._events import TaskOutcome
from ._plan import Task
from ._references import substitute

__all__ = ["Schedule", "TaskNode"]


@dataclass(slots=True)
class TaskNode:
    """A task in an execution, with its place in the graph and, once ended, its outcome."""

    task: Task
    dependencies: frozenset[str]  # computed once: Task.dependencies walks the arguments
    waiting: int = 0  # dependencies that have not ended yet
    dependants: list[str] = field(default_factory=list)
    outcome: TaskOutcome | None = None


class Schedule:
    """The tasks of one execution and what each still waits for.

    Args:
        known_tools: names a streamed task may call (``None``: do not check).
    """

    __slots__ = ("known_tools", "nodes")

    def __init__(self, known_tools: Iterable[str] | None = None) -> None:
        self.known_tools = None if known_tools is None else frozenset(known_tools)
        self.nodes: dict[str, TaskNode] = {}

    def check(self, task: Task) -> frozenset[str]:
        """``task``'s dependencies, once it is known to fit the tasks seen so far.

        Raises:
            PlanError: a duplicate id, an unknown tool, or a dependency on a
                task that has not arrived (a stream may only look back).
        """
        if task.id in self.nodes:
            raise PlanError("duplicate task id", task_id=task.id)
        if self.known_tools is not None and task.tool not in self.known_tools:
            raise PlanError(f"unknown tool {task.tool!r}", task_id=task.id)
        dependencies = task.dependencies
        if not dependencies <= self.nodes.keys():
            missing = ", ".join(sorted(dependencies - self.nodes.keys()))
            raise PlanError(f"depends on unknown task(s) {missing}", task_id=task.id)
        return dependencies

    def add(self, task: Task, dependencies: frozenset[str]) -> TaskNode:
        """Place a checked task in the graph; its ``waiting`` counts unfinished dependencies."""
        node = TaskNode(task, dependencies)
        self.nodes[task.id] = node
        nodes = self.nodes
        for dep in dependencies:
            dep_node = nodes[dep]
            dep_node.dependants.append(task.id)  # once: a task arrives once
            if dep_node.outcome is None:
                node.waiting += 1
        return node

    def blocker(self, node: TaskNode) -> str | None:
        """The first dependency whose failure stops ``node`` from running, if any.

        A failed dependency marked ``continue_on_error`` does not stop it (its
        dependants see the error text instead of a result).
        """
        for dep in sorted(node.dependencies) if len(node.dependencies) > 1 else node.dependencies:
            dep_node = self.nodes[dep]
            outcome = dep_node.outcome
            if outcome is None or outcome.status == "done":
                continue
            if outcome.status == "failed" and dep_node.task.continue_on_error:
                continue
            return dep
        return None

    def finish(self, node: TaskNode, outcome: TaskOutcome) -> list[TaskNode]:
        """Record how ``node`` ended; the dependants that this made ready, in id order."""
        node.outcome = outcome
        dependants = node.dependants
        ready = []
        for dep_id in sorted(dependants) if len(dependants) > 1 else dependants:
            dependant = self.nodes[dep_id]
            dependant.waiting -= 1  # each dependant counted this task once, in add()
            if not dependant.waiting and dependant.outcome is None:
                ready.append(dependant)
        return ready

    def inputs(self, node: TaskNode) -> dict[str, Any]:
        """``node``'s arguments with each reference replaced by the result it names.

        A failed dependency (``continue_on_error``) gives ``"ERROR: <why>"``.
        """
        if not node.task.args:
            return {}  # nothing to substitute (and a fresh dict for the runner)
        results = {}
        for dep in node.dependencies:
            outcome = self.nodes[dep].outcome
            assert outcome is not None
            results[dep] = outcome.result if outcome.status == "done" else f"ERROR: {outcome.error}"
        substituted: dict[str, Any] = substitute(node.task.args, results)
        return substituted

    def outcomes(self) -> dict[str, TaskOutcome]:
        """The outcome of every task that has ended, by id."""
        return {i: n.outcome for i, n in self.nodes.items() if n.outcome is not None}
