"""An agent run's memory: the notes recalled for its prompt, and the answer remembered after."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from plait.provenance import memory_source, untrusted

from ._memory import MemoryBinding
from ._run_limits import RunLimits
from ._run_reads import RunReads
from ._trace import MemoryRecall, RecalledNote, Trace

if TYPE_CHECKING:
    from ._agent import Agent

__all__ = ["recall_for_prompt", "remember"]


async def recall_for_prompt(
    agent: Agent[Any], task: str, limits: RunLimits, reads: RunReads
) -> MemoryRecall | None:
    """What the agent's memory recalls for ``task``; the run reads each note it keeps.

    In plan-then-execute mode untrusted notes stay out of the prompt (noted as
    withheld). ``None``: the agent has no memory.
    """
    recall = await _recall(agent, task, limits)
    if recall is None:
        return None
    namespace = _namespace(agent)
    if reads.quarantine is not None:
        kept = []
        for note in recall.recalled:
            source = memory_source(namespace, note.trust or "low")
            if untrusted([source]):
                reads.withheld.append(f"memory note: {note.text[:80]} ({source})")
            else:
                kept.append(note)
        recall = recall.model_copy(update={"recalled": tuple(kept)})
    for note in recall.recalled:
        # A note without a trust level came from a plain store: untrusted.
        reads.read(memory_source(namespace, note.trust or "low"), "recalled memory")
    return recall


async def remember(
    agent: Agent[Any], task: str, answer: str, trace: Trace, reads: RunReads
) -> None:
    """Store a finished run in the agent's memory (nothing without one)."""
    memory = agent.memory
    if isinstance(memory, MemoryBinding):
        recalled = [n.id for n in trace.memory.recalled] if trace.memory else []
        await memory.remember_run(
            agent.name, task, answer, recalled, untrusted=bool(untrusted(reads.sources))
        )
    elif memory is not None:
        await memory.remember(f"Task: {task}\nAnswer: {answer}", metadata={"agent": agent.name})


async def _recall(agent: Agent[Any], task: str, limits: RunLimits) -> MemoryRecall | None:
    memory = agent.memory
    if memory is None:
        return None
    if isinstance(memory, MemoryBinding):
        recall: MemoryRecall | None = await limits.bounded(memory.recall_traced(task))
        return recall
    started = time.perf_counter()
    notes = await limits.bounded(memory.recall(task))
    return MemoryRecall(
        query=task,
        recalled=tuple(RecalledNote(text=n) for n in notes),
        duration_s=time.perf_counter() - started,
    )


def _namespace(agent: Agent[Any]) -> str:
    memory = agent.memory
    inner = memory.memory if isinstance(memory, MemoryBinding) else memory
    return str(getattr(inner, "namespace", None) or agent.name)
