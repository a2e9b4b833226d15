"""The memory interface an agent needs, and the binding to ``plait.memory``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from plait.errors import ConfigError
from plait.memory import (
    AgentMemoryView,
    Memory,
    MemoryKind,
    RecallResult,
    SourceKind,
    TeamMemory,
    Trust,
)

from ._trace import MemoryRecall, RecalledNote, RejectedNote

__all__ = ["AgentMemory", "MemoryBinding", "bind_memory"]


@runtime_checkable
class AgentMemory(Protocol):
    """What an agent asks of a plain memory: recall notes for a task, remember an outcome.

    Kept this small on purpose so any store (a list in a test, a wrapper around
    another system) can serve an agent. ``plait.memory`` memories need no such
    wrapper: pass a :class:`~plait.memory.Memory` or
    :class:`~plait.memory.TeamMemory` and the agent binds it with
    :class:`MemoryBinding`, which also traces what a guard rejected.
    """

    async def recall(self, query: str) -> Sequence[str]:
        """Notes relevant to ``query``, most relevant first."""
        ...

    async def remember(self, text: str, *, metadata: Mapping[str, str] | None = None) -> None:
        """Store ``text`` (for example a task and its answer)."""
        ...


class MemoryBinding:
    """How an agent uses a ``plait.memory`` memory: what it recalls and what it writes.

    Recall goes through the memory's guard (when it has one); the trace lists
    the memories placed in the context and the ones the guard rejected, with
    its reasons. After a successful run the task and answer are stored as an
    episodic record derived from the recalled memories, so a record written on
    the strength of a low-trust memory is itself trusted no more than it.

    Args:
        memory: a memory, or an agent's view of a team memory.
        k: how many memories go into the context.
        kinds: which kinds of records to recall (default: episodic and semantic;
            lessons are the guard's, not the agent's).
        recall: recall before each run (off for a write-only team member).
        remember: store each successful run's task and answer.
        importance: importance of the stored episodes.
    """

    def __init__(
        self,
        memory: Memory | AgentMemoryView,
        *,
        k: int = 3,
        kinds: Iterable[MemoryKind | str] = (MemoryKind.EPISODIC, MemoryKind.SEMANTIC),
        recall: bool = True,
        remember: bool = True,
        importance: float = 0.5,
    ) -> None:
        if k < 1:
            raise ConfigError(f"MemoryBinding k must be >= 1, got {k}")
        self.memory = memory
        self.k = k
        self.kinds = tuple(MemoryKind(kind) for kind in kinds)
        self.recalls = recall
        self.store_episodes = remember
        self.importance = importance

    def __repr__(self) -> str:
        return f"MemoryBinding({self.memory!r}, k={self.k})"

    async def recall_traced(self, query: str) -> MemoryRecall | None:
        """Recall for ``query`` and describe it for the trace (``None``: recall is off).

        Raises:
            MemoryGuardRejected: the guard is strict and rejected a memory.
            MemoryAccessDenied: a team memory view without read permission.
            MemoryStoreError: the store cannot be read.
        """
        if not self.recalls:
            return None
        started = time.perf_counter()
        result: RecallResult = await self.memory.recall(query, k=self.k, kinds=self.kinds)
        return MemoryRecall(
            query=query,
            recalled=tuple(
                RecalledNote(
                    text=m.text,
                    id=m.record.id,
                    score=m.score,
                    trust=m.record.provenance.trust.value,
                    writer=m.record.provenance.writer,
                )
                for m in result.memories
            ),
            rejected=tuple(
                RejectedNote(
                    id=r.record.id,
                    text=r.record.text,
                    stage=r.stage,
                    reason=r.reason,
                    source=r.record.provenance.source.value,
                    writer=r.record.provenance.writer,
                )
                for r in result.rejected
            ),
            duration_s=time.perf_counter() - started,
        )

    async def remember_run(
        self,
        agent: str,
        task: str,
        answer: str,
        recalled: Sequence[str],
        *,
        untrusted: bool = False,
    ) -> None:
        """Store a finished run as an episode, derived from the memories it used.

        ``untrusted``: the answer rests on untrusted data (a web page, a tool
        result), so the episode is stored with low trust: an agent's answer
        cannot launder what it read into a trusted memory.
        """
        if not self.store_episodes:
            return
        fields: dict[str, object] = {
            "kind": MemoryKind.EPISODIC,
            "importance": self.importance,
            "source": SourceKind.AGENT,
            "metadata": {"agent": agent},
            "derived_from": [i for i in recalled if i],
        }
        if untrusted:
            fields["trust"] = Trust.LOW
        if isinstance(self.memory, Memory):
            fields["writer"] = agent  # a team view writes under its own agent's name
        await self.memory.remember(f"Task: {task}\nAnswer: {answer}", **fields)  # type: ignore[arg-type]


def bind_memory(
    memory: AgentMemory | MemoryBinding | Memory | TeamMemory | AgentMemoryView | None,
    agent: str,
) -> AgentMemory | MemoryBinding | None:
    """What an agent keeps for its ``memory=`` argument.

    A :class:`Memory` or team view is bound with default settings; a
    :class:`TeamMemory` is bound through the view of the agent named ``agent``,
    recalling only if it may read and storing episodes only if it may write;
    anything else is used as it is.

    Raises:
        ConfigError: the object is no kind of memory.
    """
    if memory is None or isinstance(memory, MemoryBinding):
        return memory
    if isinstance(memory, TeamMemory):
        return MemoryBinding(
            memory.for_agent(agent), recall=memory.can(agent, "r"), remember=memory.can(agent, "w")
        )
    if isinstance(memory, Memory | AgentMemoryView):
        return MemoryBinding(memory)
    if isinstance(memory, AgentMemory):
        return memory
    raise ConfigError(
        f"agent {agent!r}: memory must be a plait.memory Memory, TeamMemory or view, a "
        f"MemoryBinding, or have async recall(query) and remember(text); got "
        f"{type(memory).__name__}"
    )
