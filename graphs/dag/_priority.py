"""Critical-path priorities of a plan's tasks, computed once per plan."""

from __future__ import annotations

from collections.abc import Iterable

from ._plan import Task

__all__ = ["critical_path_priorities"]


def critical_path_priorities(tasks: Iterable[Task]) -> dict[str, int]:
    """Each task's depth to the sink: the longest path to a task nothing depends on.

    A sink has depth 0; a task's depth is one more than its deepest dependent's.
    Model requests of deeper tasks are served first, since more work waits on them.
    """
    by_id = {task.id: task for task in tasks}
    dependents: dict[str, list[str]] = {task_id: [] for task_id in by_id}
    for task in by_id.values():
        for dependency in task.dependencies:
            if dependency in dependents:
                dependents[dependency].append(task.id)
    depth: dict[str, int] = {}

    def depth_of(task_id: str) -> int:
        # Plans are acyclic (checked when built), so this recursion ends.
        if task_id not in depth:
            depth[task_id] = 1 + max((depth_of(d) for d in dependents[task_id]), default=-1)
        return depth[task_id]

    return {task_id: depth_of(task_id) for task_id in by_id}
