"""Agents: the ``Agent`` runtime (tool loop, structured output, limits, traces),
the ``Supervisor`` (hierarchical teams hired under a budget), ensembles and the
router agent. Every one of them is a :class:`Runnable`.
"""

from ._agent import Agent, AgentLimits, Roles
from ._ensembles import (
    Critique,
    CritiqueRevise,
    Ensemble,
    EnsembleResult,
    EnsembleStop,
    Fuse,
    GenerateRank,
    MajorityVote,
    Ranking,
    Verdict,
    Verifier,
    VerifyBeforeAccept,
)
from ._hiring import Hire, Hiring, Metered, TeamPrefix
from ._memory import AgentMemory, MemoryBinding
from ._router_agent import AgentChoice, RoutedResult, RouterAgent
from ._runnable import Runnable, RunnableResult
from ._supervisor import Supervisor
from ._team_plan import DraftPlan, Review, RoleSpec, Subtask, TeamPlan
from ._team_run import Dispatch, Reviewer, WorkerFailed, gather_dispatch
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
    "AgentChoice",
    "AgentEvent",
    "AgentLimits",
    "AgentMemory",
    "AgentResult",
    "Critique",
    "CritiqueRevise",
    "DecisionKind",
    "Dispatch",
    "DraftPlan",
    "Ensemble",
    "EnsembleResult",
    "EnsembleStop",
    "Fuse",
    "GenerateRank",
    "Hire",
    "Hiring",
    "MajorityVote",
    "MemoryBinding",
    "MemoryRecall",
    "Metered",
    "ModelTurn",
    "Ranking",
    "RecalledNote",
    "RejectedNote",
    "Review",
    "Reviewer",
    "RoleSpec",
    "Roles",
    "RoutedResult",
    "RouterAgent",
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
    "Verdict",
    "Verifier",
    "VerifyBeforeAccept",
    "WorkerFailed",
    "WorkerReport",
    "gather_dispatch",
]
