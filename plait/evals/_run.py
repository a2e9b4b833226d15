"""Run function-calling cases through an agent and grade them.

Each case becomes one agent turn: the offered functions as stub tools, the
request as the task, a call required (``tool_choice="required"``), one tool
round. The agent's tool selection policy is the thing under test, so the same
cases can be run with ``model``, ``embedding`` and ``hybrid`` side by side.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from plait.agents import Agent, AgentLimits
from plait.backends import Backend
from plait.errors import RunError
from plait.tools import ToolSelection

from ._cases import FunctionCase
from ._grading import grade_calls

__all__ = ["INSTRUCTIONS", "CaseResult", "CategoryReport", "evaluate", "result_json", "run_case"]

INSTRUCTIONS = "Answer the user's request by calling one of the functions offered."


@dataclass(frozen=True)
class CaseResult:
    """How one case went.

    Attributes:
        id: the case id.
        category: its category.
        ok: the calls were graded correct.
        valid: the reply was a well-formed call of an offered function.
        reason: why it was graded wrong (or the error), "" when right.
        calls: the calls made, ``(function name, arguments)``.
        latency_s: wall-clock seconds of the agent run.
        prompt_tokens: prompt tokens of the run.
        completion_tokens: completion tokens of the run.
        selection: the first turn's selection decision (JSON), if any.
        vote: the first turn's vote among its candidates (JSON), if it drew several.
    """

    id: str
    category: str
    ok: bool
    valid: bool
    reason: str
    calls: tuple[tuple[str, dict[str, Any]], ...]
    latency_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    selection: dict[str, Any] | None = None
    vote: dict[str, Any] | None = None


@dataclass
class CategoryReport:
    """The figures of one category."""

    category: str
    cases: int = 0
    correct: int = 0
    valid: int = 0
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fixed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, result: CaseResult) -> None:
        self.cases += 1
        self.correct += result.ok
        self.valid += result.valid
        self.latency_s += result.latency_s
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        if result.selection and result.selection.get("fixed"):
            self.fixed += 1
        if not result.ok:
            self.failures.append((result.id, result.reason))

    def summary(self) -> dict[str, Any]:
        """The JSON figures: accuracy, valid rate, mean latency and tokens per case."""
        n = self.cases or 1
        return {
            "category": self.category,
            "cases": self.cases,
            "accuracy": round(self.correct / n, 4),
            "valid_rate": round(self.valid / n, 4),
            "mean_latency_s": round(self.latency_s / n, 3),
            "mean_prompt_tokens": round(self.prompt_tokens / n, 1),
            "mean_completion_tokens": round(self.completion_tokens / n, 1),
            "fixed_rate": round(self.fixed / n, 4),
        }


def _calls_of(result_calls: Iterable[Any], names: Mapping[str, str]) -> tuple[list[Any], bool]:
    """The calls as ``(function name, arguments)``, and whether all were well formed."""
    calls: list[Any] = []
    valid = True
    for call in result_calls:
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            arguments, valid = {}, False
        if not isinstance(arguments, dict):
            arguments, valid = {}, False
        if call.name not in names:
            valid = False
        calls.append((names.get(call.name, call.name), arguments))
    return calls, valid and bool(calls)


async def run_case(
    case: FunctionCase,
    backend: Backend,
    *,
    tool_selection: ToolSelection | str | None = None,
    tool_sampling: int | None = None,
    max_turn_tokens: int = 384,
) -> CaseResult:
    """Run one case through an agent on ``backend`` and grade its calls.

    Run-time failures (a reply cut off, a server error) grade the case wrong
    and invalid with the error as the reason; usage errors propagate.
    """
    names = case.tool_names()
    agent: Agent[str] = Agent(
        "assistant",
        case.system or INSTRUCTIONS,
        backend,
        tools=case.toolset(),
        tool_choice="required",
        tool_selection=tool_selection,
        tool_sampling=tool_sampling,
        max_tool_rounds=1,
        temperature=0.0,
        # One turn: the call. The stub tools run, then the step limit ends the run.
        limits=AgentLimits(max_steps=1, max_turn_tokens=max_turn_tokens, timeout_s=None),
    )
    started = time.perf_counter()
    try:
        result = await agent.arun(case.request)
    except RunError as e:
        return CaseResult(
            id=case.id,
            category=case.category,
            ok=False,
            valid=False,
            reason=f"{type(e).__name__}: {e}",
            calls=(),
            latency_s=time.perf_counter() - started,
        )
    latency = time.perf_counter() - started
    turn = result.trace.turns[0] if result.trace.turns else None
    # The calls the agent ran (the turn may hold more: a fixed tool runs once
    # for a request that names one item).
    calls, valid = _calls_of(result.trace.tool_calls, names)
    grade = grade_calls(calls, case.expected, case.parameters())
    return CaseResult(
        id=case.id,
        category=case.category,
        ok=grade.ok,
        valid=valid,
        reason=grade.reason,
        calls=tuple((n, a) for n, a in calls),
        latency_s=latency,
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        selection=turn.selection.model_dump() if turn and turn.selection else None,
        vote=turn.vote.model_dump() if turn and turn.vote else None,
    )


async def evaluate(
    cases: Iterable[FunctionCase],
    backend: Backend,
    *,
    tool_selection: ToolSelection | str | None = None,
    tool_sampling: int | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> dict[str, CategoryReport]:
    """Run every case (one at a time) and report per category, in first-seen order."""
    reports: dict[str, CategoryReport] = {}
    for case in cases:
        result = await run_case(
            case, backend, tool_selection=tool_selection, tool_sampling=tool_sampling
        )
        reports.setdefault(case.category, CategoryReport(case.category)).add(result)
        if on_result is not None:
            on_result(result)
    return reports


def result_json(result: CaseResult) -> str:
    """One case result as a JSON line."""
    return json.dumps(asdict(result), ensure_ascii=False, default=str)
