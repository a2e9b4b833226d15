"""The one interface agents, ensembles and supervisors share, so each can stand in for another."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from plait.errors import ConfigError

__all__ = ["Runnable", "RunnableResult", "by_name"]


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

    ``Agent``, ``Supervisor``, the ensembles, ``RouterAgent`` and ``RemoteAgent``
    all are one.

    Supervisors delegate to runnables, ensembles combine them, the router agent
    picks one, and ``plait.graphs.task_runner`` runs them as DAG tasks.
    """

    # Read-only: a remote agent's name and instructions come from its card.
    @property
    def name(self) -> str: ...

    @property
    def instructions(self) -> str: ...

    async def arun(self, task: str) -> Any: ...


RunnableT = TypeVar("RunnableT", bound=Runnable)


def by_name(owner: str, runnables: Sequence[RunnableT]) -> dict[str, RunnableT]:
    """``runnables`` by name, for ``owner`` (named in the error) to delegate to.

    Raises:
        ConfigError: two of them share a name (a plan or a choice names one by it).
    """
    names = [r.name for r in runnables]
    if len(set(names)) != len(names):
        raise ConfigError(f"{owner}: agent names repeat: {names}")
    return {r.name: r for r in runnables}
