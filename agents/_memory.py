"""The memory interface an agent needs; ``plait.memory`` provides implementations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

__all__ = ["AgentMemory"]


@runtime_checkable
class AgentMemory(Protocol):
    """What an agent asks of a memory: recall notes for a task, remember an outcome.

    Kept this small on purpose so any store (the guarded chromadb memories of
    ``plait.memory``, a list in a test) can serve an agent.
    """

    async def recall(self, query: str) -> Sequence[str]:
        """Notes relevant to ``query``, most relevant first."""
        ...

    async def remember(self, text: str, *, metadata: Mapping[str, str] | None = None) -> None:
        """Store ``text`` (for example a task and its answer)."""
        ...
