"""Plans: tasks with dependencies, held as a networkx DiGraph, validated before they run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from plait.errors import PlanError

from ._references import find_references

__all__ = ["Plan", "Task", "ValidatedPlan"]


class Task(BaseModel):
    """One step of a plan: call ``tool`` (a tool or agent name) with ``args``.

    ``args`` may reference earlier results as ``$1``, ``${1}`` or ``${name}``;
    referenced tasks become dependencies automatically.

    Attributes:
        id: unique within the plan.
        tool: the tool or agent to run.
        args: arguments, possibly with references.
        depends_on: extra dependencies besides the referenced ones.
        requires_approval: a human must approve before it runs.
        continue_on_error: dependants still run when it fails (they see the error text).
        timeout_s: per-attempt time limit (``None``: the executor's default).
        retries: extra attempts after a failure the executor's
            :class:`~plait.retry.RetryPolicy` retries (``None``: as many
            as the policy allows).
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    requires_approval: bool = False
    continue_on_error: bool = False
    timeout_s: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0)

    @property
    def dependencies(self) -> frozenset[str]:
        """Referenced tasks plus explicit ``depends_on``."""
        return frozenset(find_references(self.args)) | frozenset(self.depends_on)

    @model_validator(mode="after")
    def _not_self_dependent(self) -> Task:
        if self.id in self.dependencies:
            raise ValueError(f"task {self.id} depends on itself")
        return self


class Plan(BaseModel):
    """A set of tasks forming a directed acyclic graph."""

    model_config = ConfigDict(frozen=True)

    tasks: tuple[Task, ...] = ()

    @property
    def by_id(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks}

    def graph(self) -> nx.DiGraph:
        """The dependency graph: an edge ``a -> b`` means b needs a's result."""
        g = nx.DiGraph()
        for task in self.tasks:
            g.add_node(task.id, task=task)
        for task in self.tasks:
            for dep in task.dependencies:
                g.add_edge(dep, task.id)
        return g

    def validate_against(
        self,
        known_tools: Iterable[str] | None = None,
        *,
        check_args: Callable[[Task], str | None] | None = None,
    ) -> ValidatedPlan:
        """Check the plan before anything runs; return it as a :class:`ValidatedPlan`.

        An executor given the returned plan (with the same ``known_tools``, or
        ``None``) runs it without checking it again.

        Args:
            known_tools: names a task may call (``None``: do not check).
            check_args: returns a problem description for a task's arguments, or None.

        Raises:
            PlanError: naming the task — duplicate id, unknown tool, reference to a
                missing task, bad arguments, or a cycle (listed in order).
        """
        seen: set[str] = set()
        for task in self.tasks:
            if task.id in seen:
                raise PlanError("duplicate task id", task_id=task.id)
            seen.add(task.id)
        tools = None if known_tools is None else set(known_tools)
        for task in self.tasks:
            if tools is not None and task.tool not in tools:
                hint = _closest(task.tool, tools)
                raise PlanError(f"unknown tool {task.tool!r}{hint}", task_id=task.id)
            missing = sorted(task.dependencies - seen)
            if missing:
                raise PlanError(f"depends on missing task(s) {', '.join(missing)}", task_id=task.id)
            problem = check_args(task) if check_args else None
            if problem:
                raise PlanError(f"bad arguments for {task.tool!r}: {problem}", task_id=task.id)
        if _acyclic(self.tasks):
            return self._validated()
        try:
            cycle = nx.find_cycle(self.graph())
        except nx.NetworkXNoCycle:
            return self._validated()
        path = " -> ".join([a for a, _ in cycle] + [cycle[0][0]])
        raise PlanError(f"dependency cycle {path}", task_id=cycle[0][0])

    def _validated(self) -> ValidatedPlan:
        if isinstance(self, ValidatedPlan):
            return self
        # Built without validating again: the tasks are the checked ones, unchanged.
        return ValidatedPlan.model_construct(tasks=self.tasks)

    def critical_path(
        self, durations: Mapping[str, float] | None = None
    ) -> tuple[list[str], float]:
        """The longest chain of dependent tasks and its length.

        Args:
            durations: seconds per task id (default: every task counts 1).
        """
        g = self.graph()
        weight = {t: (durations or {}).get(t, 1.0) for t in g.nodes}
        best: dict[str, tuple[float, list[str]]] = {}
        for node in nx.topological_sort(g):
            preds = [best[p] for p in g.predecessors(node)]
            length, path = max(preds, key=lambda lp: lp[0], default=(0.0, []))
            best[node] = (length + weight[node], [*path, node])
        if not best:
            return [], 0.0
        length, path = max(best.values(), key=lambda lp: lp[0])
        return path, length

    def width(self) -> int:
        """The most tasks that can run at once (largest topological generation)."""
        return max((len(gen) for gen in nx.topological_generations(self.graph())), default=0)

    def to_mermaid(self) -> str:
        """The plan as a Mermaid flowchart."""
        lines = ["flowchart TD"]
        for task in self.tasks:
            label = f"{task.id}. {task.tool}".replace('"', "'")
            lines.append(f'    t{task.id}["{label}"]')
        for a, b in self.graph().edges:
            lines.append(f"    t{a} --> t{b}")
        return "\n".join(lines)


class ValidatedPlan(Plan):
    """A plan that passed :meth:`Plan.validate_against`: unique ids, known dependencies, no cycle.

    Executors trust it: they run it without validating it again (they only
    check that its tools are among the ``known_tools`` a run is given). It
    equals and serialises like the :class:`Plan` of the same tasks.
    """

    def checked_for(self, known_tools: Set[str] | None) -> bool:
        """Whether every task calls one of ``known_tools`` (``None``: any tool will do)."""
        return known_tools is None or all(task.tool in known_tools for task in self.tasks)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Plan):
            return self.tasks == other.tasks
        return NotImplemented

    __hash__ = Plan.__hash__


def _acyclic(tasks: Iterable[Task]) -> bool:
    """Whether the tasks (with known dependencies) form no cycle: Kahn's algorithm.

    Much cheaper than networkx for a large plan; networkx names the cycle when there is one.
    """
    waiting: dict[str, int] = {}
    dependants: dict[str, list[str]] = {}
    for task in tasks:
        dependencies = task.dependencies
        waiting[task.id] = len(dependencies)
        for dep in dependencies:
            dependants.setdefault(dep, []).append(task.id)
    ready = [i for i, n in waiting.items() if n == 0]
    done = 0
    while ready:
        done += 1
        for dependant in dependants.get(ready.pop(), ()):
            waiting[dependant] -= 1
            if waiting[dependant] == 0:
                ready.append(dependant)
    return done == len(waiting)


def _closest(name: str, options: set[str]) -> str:
    import difflib

    match = difflib.get_close_matches(name, sorted(options), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""
