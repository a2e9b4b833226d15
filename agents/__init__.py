"""Agents: the ``Agent`` runtime (tool loop, structured output, limits, traces),
the ``Supervisor`` (hierarchical teams hired under a budget), ensembles and the
router agent, and ``RemoteAgent`` (an A2A agent elsewhere). Every one of them is a
:class:`Runnable`.

Only the names below are public. Hiring under a budget, the run loops and the
structured answers of judge and planning calls are internals of their modules;
the errors a run raises live in :mod:`plait.errors`.
"""

from ._agent import Agent, AgentLimits, AgentMode, Roles
from ._ensembles import (
    CritiqueRevise,
    Ensemble,
    EnsembleResult,
    EnsembleStop,
    Fuse,
    GenerateRank,
    MajorityVote,
    Verifier,
    VerifyBeforeAccept,
)
from ._extract import extraction_tool
from ._memory import AgentMemory, MemoryBinding
from ._remote import RemoteAgent
from ._router_agent import AgentChoice, RoutedResult, RouterAgent
from ._runnable import Runnable, RunnableResult
from ._supervisor import Supervisor, TeamMode
from ._team_dispatch import Dispatch, Reviewer, gather_dispatch
from ._team_plan import Review, RoleSpec, Subtask, TeamPlan
from ._team_trace import (
    DecisionKind,
    TeamDecision,
    TeamResult,
    TeamStop,
    TeamTrace,
    WorkerReport,
)
from ._tool_vote import (
    ToolVote,
    check_tool_sampling,
    resolve_tool_sampling,
    sampled_requests,
    vote_attributes,
    vote_calls,
)
from ._trace import (
    AgentEvent,
    AgentResult,
    MemoryRecall,
    ModelTurn,
    RecalledNote,
    RejectedNote,
    RemoteUpdate,
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
    "AgentMode",
    "AgentResult",
    "CritiqueRevise",
    "DecisionKind",
    "Dispatch",
    "Ensemble",
    "EnsembleResult",
    "EnsembleStop",
    "Fuse",
    "GenerateRank",
    "MajorityVote",
    "MemoryBinding",
    "MemoryRecall",
    "ModelTurn",
    "RecalledNote",
    "RejectedNote",
    "RemoteAgent",
    "RemoteUpdate",
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
    "TeamMode",
    "TeamPlan",
    "TeamResult",
    "TeamStop",
    "TeamTrace",
    "TextDelta",
    "ToolFinished",
    "ToolRecord",
    "ToolStarted",
    "ToolVote",
    "Trace",
    "Verifier",
    "VerifyBeforeAccept",
    "WorkerReport",
    "check_tool_sampling",
    "extraction_tool",
    "gather_dispatch",
    "resolve_tool_sampling",
    "sampled_requests",
    "vote_attributes",
    "vote_calls",
]
