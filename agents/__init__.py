"""Agents: the ``Agent`` runtime (tool loop, structured output, limits, traces),
the ``Supervisor`` (hierarchical teams hired under a budget), ensembles and the
router agent. Every one of them is a :class:`Runnable`.
"""

from ._agent import Agent, AgentLimits, Roles
from ._hiring import Hire, Hiring, Metered, TeamPrefix
from ._memory import AgentMemory
from ._runnable import Runnable, RunnableResult
from ._supervisor import Dispatch, Reviewer, Supervisor, WorkerFailed, gather_dispatch
from ._team_plan import Review, RoleSpec, Subtask, TeamPlan
from ._team_trace import (
    DecisionKind,
    TeamDecision,
    TeamResult,
    TeamStop,
    TeamTrace,
    WorkerReport,
)
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
    "DecisionKind",
    "Dispatch",
    "Hire",
    "Hiring",
    "Metered",
    "ModelTurn",
    "Review",
    "Reviewer",
    "RoleSpec",
    "Roles",
    "RunFinished",
    "Runnable",
    "RunnableResult",
    "StopReason",
    "Subtask",
    "Supervisor",
    "TeamDecision",
    "TeamPlan",
    "TeamPrefix",
    "TeamResult",
    "TeamStop",
    "TeamTrace",
    "TextDelta",
    "ToolFinished",
    "ToolRecord",
    "ToolStarted",
    "Trace",
    "WorkerFailed",
    "WorkerReport",
    "gather_dispatch",
]
