"""What a run leaves behind: a structured trace, the result and the stream events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from plait.completions import Usage
from plait.messages import Message, ToolCall
from plait.policies import Violation
from plait.provenance import Source
from plait.tools import SelectionDecision

from ._tool_vote import ToolVote

__all__ = [
    "AgentEvent",
    "AgentResult",
    "MemoryRecall",
    "ModelTurn",
    "RecalledNote",
    "RejectedNote",
    "RemoteUpdate",
    "RunFinished",
    "StopReason",
    "TextDelta",
    "ToolFinished",
    "ToolRecord",
    "ToolStarted",
    "Trace",
]

OutputT = TypeVar("OutputT")

StopReason = Literal["done", "max_steps", "max_tokens", "timeout"]
"""Why a run ended: it answered, or which limit stopped it."""

Role = Literal["agent", "planner", "caller", "summarizer"]


class ModelTurn(BaseModel):
    """One request to a model and what it answered.

    ``selection`` says how the offered tools were chosen (policy, scores,
    margin, the tool fixed if any); ``None`` on turns that offer no tools.
    ``vote`` says how the turn's call was chosen among k candidates
    (``tool_sampling``); ``None`` on turns that drew one. Such a turn's
    ``tool_calls`` are the winner's, its ``usage`` every candidate's.
    """

    model_config = ConfigDict(frozen=True)

    step: int
    role: Role = "agent"
    backend: str
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    offered_tools: tuple[str, ...] = ()
    selection: SelectionDecision | None = None
    vote: ToolVote | None = None
    finish_reason: str = "stop"
    usage: Usage = Usage()
    cost: float = 0.0
    duration_s: float = 0.0


class ToolRecord(BaseModel):
    """One tool call: arguments as the model wrote them, result, error kind, duration."""

    model_config = ConfigDict(frozen=True)

    step: int
    call_id: str
    name: str
    arguments: str
    result: str
    error: str | None = None
    duration_s: float = 0.0
    truncated: bool = False


class RecalledNote(BaseModel):
    """A memory put into the agent's context.

    Attributes:
        text: what the agent read.
        id: the record id (empty for memories that have none).
        score: the recall score it ranked by.
        trust: the record's trust level.
        writer: who wrote it.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    id: str = ""
    score: float | None = None
    trust: str | None = None
    writer: str | None = None


class RejectedNote(BaseModel):
    """A memory the guard kept out of the agent's context, and why.

    Attributes:
        id: the record id.
        text: the record's text.
        stage: ``write`` (quarantined), ``lesson`` or ``consensus``.
        reason: the guard's reason, in words.
        source: where the record's content came from.
        writer: who wrote it.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    stage: str
    reason: str
    source: str
    writer: str


class MemoryRecall(BaseModel):
    """What memory gave the run before its first model turn.

    Attributes:
        query: what was recalled for (the task).
        recalled: memories placed in the context, best first.
        rejected: memories a guard dropped for this query.
        duration_s: seconds the recall (guard included) took.
    """

    model_config = ConfigDict(frozen=True)

    query: str
    recalled: tuple[RecalledNote, ...] = ()
    rejected: tuple[RejectedNote, ...] = ()
    duration_s: float = 0.0


class Trace(BaseModel):
    """Everything a run did, in order; JSON-serialisable with ``model_dump_json()``.

    Attributes:
        agent: the agent's name.
        turns: model requests and answers.
        tool_calls: tool calls with arguments, results and durations.
        messages: the final conversation.
        usage: tokens over the whole run (cached prompt tokens included).
        cost: what the run's model turns cost, per the agent's prices (0 when
            no backend it used is priced).
        memory: what memory recalled (and a guard rejected) for the task.
        sources: everything the run read (its task's sources, recalled
            memories, tool results): what its answer rests on.
        violations: tool calls a policy refused during the run.
        withheld: in plan-then-execute mode, what the model never read
            (``$1: read_inbox result (tool:read_inbox)``, untrusted memory
            notes); their sources are in ``sources`` only where the answer
            references them.
        duration_s: wall-clock seconds of the run.
        stop_reason: why it ended.
    """

    agent: str
    turns: list[ModelTurn] = Field(default_factory=list)
    tool_calls: list[ToolRecord] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)
    usage: Usage = Usage()
    cost: float = 0.0
    memory: MemoryRecall | None = None
    sources: frozenset[Source] = frozenset()
    violations: list[Violation] = Field(default_factory=list)
    withheld: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    stop_reason: StopReason = "done"

    @property
    def steps(self) -> int:
        """Model turns taken."""
        return len(self.turns)


@dataclass(frozen=True)
class AgentResult(Generic[OutputT]):
    """How a run ended.

    Attributes:
        output: the typed output (the text when the agent has no output type);
            ``None`` when a limit stopped the run first.
        text: the model's last text.
        stop_reason: ``"done"``, or the limit that stopped the run.
        trace: the structured trace.
    """

    output: OutputT | None
    text: str
    stop_reason: StopReason
    trace: Trace

    @property
    def ok(self) -> bool:
        """Whether the run answered (no limit stopped it)."""
        return self.stop_reason == "done"

    @property
    def usage(self) -> Usage:
        """Tokens over the whole run."""
        return self.trace.usage

    @property
    def sources(self) -> frozenset[Source]:
        """What the answer rests on (see :attr:`Trace.sources`)."""
        return self.trace.sources

    @property
    def cost(self) -> float:
        """What the run's model turns cost (see :attr:`Trace.cost`)."""
        return self.trace.cost


@dataclass(frozen=True)
class TextDelta:
    """A piece of model text as it streams (tool-call turns on constrained backends stream none)."""

    step: int
    delta: str


@dataclass(frozen=True)
class ToolStarted:
    """A tool call is about to run."""

    step: int
    call: ToolCall


@dataclass(frozen=True)
class ToolFinished:
    """A tool call finished (successfully or with an error the model will see)."""

    step: int
    record: ToolRecord


@dataclass(frozen=True)
class RemoteUpdate:
    """A remote (A2A) agent's task changed state or reported progress.

    Attributes:
        task_id: the remote task's id.
        state: ``submitted``, ``working``, ``completed``, ``failed``, ``canceled``,
            ``rejected``, ``input_required`` or ``auth_required``.
        text: the text of the update's message (empty when it has none).
    """

    task_id: str
    state: str
    text: str = ""


@dataclass(frozen=True)
class RunFinished:
    """The last event of every stream."""

    result: AgentResult[Any]


AgentEvent = TextDelta | ToolStarted | ToolFinished | RemoteUpdate | RunFinished
"""What :meth:`Agent.stream` (and :meth:`RemoteAgent.stream`) yields."""
