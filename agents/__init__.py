"""Agents: the ``Agent`` runtime (tool loop, structured output, limits, traces).

Planner, joiner, router agent, supervisor and ensembles come with their issues.
"""

from ._agent import Agent, AgentLimits, Roles
from ._memory import AgentMemory
from ._trace import (
    AgentEvent,
    AgentResult,
    ModelTurn,
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
    "ModelTurn",
    "Roles",
    "RunFinished",
    "StopReason",
    "TextDelta",
    "ToolFinished",
    "ToolRecord",
    "ToolStarted",
    "Trace",
]
