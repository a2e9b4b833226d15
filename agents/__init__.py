"""Agents: the ``Agent`` runtime (tool loop, structured output, limits, traces).

Planner, joiner, router agent, supervisor and ensembles come with their issues.
"""

from ._agent import Agent, AgentLimits, Roles
from ._memory import AgentMemory, MemoryBinding
from ._trace import (
    AgentEvent,
    AgentResult,
    MemoryRecall,
    ModelTurn,
    RecalledNote,
    RejectedNote,
    RunFinished,
    StopReason,
    TextDelta,
    ToolFinished,
    ToolRecord,
    ToolStarted,
    Trace,
)

__all__ = [
    "Agent",
    "AgentEvent",
    "AgentLimits",
    "AgentMemory",
    "AgentResult",
    "MemoryBinding",
    "MemoryRecall",
    "ModelTurn",
    "RecalledNote",
    "RejectedNote",
    "Roles",
    "RunFinished",
    "StopReason",
    "TextDelta",
    "ToolFinished",
    "ToolRecord",
    "ToolStarted",
    "Trace",
]
