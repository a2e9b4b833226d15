"""The one interface agents, ensembles and supervisors share, so each can stand in for another."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Runnable", "RunnableResult"]


@runtime_checkable
class RunnableResult(Protocol):
    """What a run returns: a typed output, plain text and why it stopped (``"done"``: answered)."""

    @property
    def output(self) -> Any: ...

    @property
    def text(self) -> str: ...

    @property
    def stop_reason(self) -> str: ...


@runtime_checkable
class Runnable(Protocol):
    """Anything that takes a task and answers it.

    ``Agent``, ``Supervisor``, the ensembles and ``RouterAgent`` all are one.

    Supervisors delegate to runnables, ensembles combine them, the router agent
    picks one, and ``plait.graphs.task_runner`` runs them as DAG tasks.
    """

    name: str
    instructions: str

    async def arun(self, task: str) -> Any: ...
