"""Ensembles (Archon, PlanGEN, Solve-Detect-Verify): several runs, one better answer.

Every ensemble is a :class:`~plait.agents.Runnable` (``name``, ``instructions``,
``arun(task)``) built from runnables, so ensembles nest, a supervisor can
delegate to one, and ``plait.graphs.task_runner`` runs them as DAG tasks. Each
records its decisions (candidates, ranking, votes, verdicts) as
:class:`~plait.agents.TeamDecision`\\ s in its result.

- :class:`GenerateRank` - N candidates, a judge model picks the best.
- :class:`Fuse` - N candidates, a fuser model merges them into one answer.
- :class:`CritiqueRevise` - answer, critic checks, author revises (bounded rounds).
- :class:`VerifyBeforeAccept` - answer, a verifier must pass it, else try again.
- :class:`MajorityVote` - N answers, the strict majority wins.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plait._sync import run_sync
from plait._tasks import gather_or_raise
from plait.backends import Backend
from plait.errors import ConfigError, RunError

from ._agent import Agent
from ._prompts import render
from ._runnable import Runnable
from ._team_trace import DecisionKind, TeamDecision

__all__ = [
    "Critique",
    "CritiqueRevise",
    "Ensemble",
    "EnsembleResult",
    "EnsembleStop",
    "Fuse",
    "GenerateRank",
    "MajorityVote",
    "Ranking",
    "Verdict",
    "VerifyBeforeAccept",
    "Verifier",
]

EnsembleStop = Literal["done", "failed", "rejected", "no_majority"]
"""``done``; ``failed`` (no member answered); ``rejected`` (no answer passed the
verifier); ``no_majority`` (votes split)."""

Verifier = Callable[[str, str], bool | Awaitable[bool]]
"""A deterministic check ``(task, answer) -> passes`` (e.g. run the tests, recompute)."""


class Ranking(BaseModel):
    """A judge's pick among numbered candidates."""

    model_config = ConfigDict(frozen=True)

    best: int = Field(ge=1)
    reason: str = Field(default="", max_length=300)


class Critique(BaseModel):
    """A critic's check: ``ok``, or what to fix."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    critique: str = Field(default="", max_length=400)


class Verdict(BaseModel):
    """A verifier's decision on one answer."""

    model_config = ConfigDict(frozen=True)

    valid: bool
    reason: str = Field(default="", max_length=300)


@dataclass(frozen=True)
class EnsembleResult:
    """How an ensemble run ended.

    Attributes:
        output: the chosen answer (``None`` unless ``stop_reason`` is ``done``).
        text: the chosen answer, or the best there was, as text.
        stop_reason: ``done`` or why no answer was accepted.
        candidates: every member answer considered, in order.
        decisions: what the ensemble decided, in order.
    """

    output: str | None
    text: str
    stop_reason: EnsembleStop
    candidates: tuple[str, ...] = ()
    decisions: tuple[TeamDecision, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.stop_reason == "done"


class Ensemble(ABC):
    """Base of all ensembles: a named runnable with a decision log per run."""

    def __init__(self, name: str, instructions: str) -> None:
        if not name:
            raise ConfigError("an ensemble needs a non-empty name")
        self.name = name
        self.instructions = instructions

    @abstractmethod
    async def arun(self, task: str) -> EnsembleResult:
        """Run the ensemble on ``task``."""

    def run(self, task: str) -> EnsembleResult:
        """Blocking :meth:`arun`, for code that has no event loop running."""
        name = type(self).__name__
        return run_sync(self.arun(task), name=f"{name}.run()", instead="await ensemble.arun()")

    def _log(self) -> _Log:
        return _Log(self.name)

    def _judge(self, backend: Backend, template: str, output_type: type[Any]) -> Agent[Any]:
        return Agent(
            f"{self.name}-judge",
            render(template),
            backend,
            output_type=output_type,
            temperature=0.0,
        )


@dataclass
class _Log:
    by: str
    decisions: list[TeamDecision] = field(default_factory=list)

    def __call__(self, kind: DecisionKind, subject: str = "", detail: str = "") -> None:
        self.decisions.append(TeamDecision(kind=kind, by=self.by, subject=subject, detail=detail))

    def result(
        self, stop: EnsembleStop, answer: str, candidates: Sequence[str] = ()
    ) -> EnsembleResult:
        return EnsembleResult(
            output=answer if stop == "done" else None,
            text=answer,
            stop_reason=stop,
            candidates=tuple(candidates),
            decisions=tuple(self.decisions),
        )


async def _answer(member: Runnable, task: str) -> str | None:
    """A member's answer as text, or ``None`` when it stopped early or failed.

    Only a run-time failure (a backend down, output that never fit, a tool) makes
    a member abstain. A usage error (a misconfigured member) and control flow
    (cancellation, a LangGraph interrupt) propagate: an ensemble of N
    misconfigured members must not report "abstained" N times.
    """
    try:
        result = await member.arun(task)
    except RunError:
        return None
    if result.stop_reason != "done":
        return None
    output = result.output
    if isinstance(output, BaseModel):
        return output.model_dump_json()
    return result.text if output is None else str(output)


async def _answers(members: Sequence[Runnable], task: str) -> list[str | None]:
    """Every member's answer, in parallel; what propagates from one stops the others."""
    return await gather_or_raise(_answer(m, task) for m in members)


async def _generate(members: Sequence[Runnable], task: str, log: _Log) -> list[str]:
    answers = await _answers(members, task)
    kept = []
    for member, answer in zip(members, answers, strict=True):
        if answer is None:
            log("generate", member.name, "no answer (failed or stopped early)")
        else:
            log("generate", member.name, answer[:200])
            kept.append(answer)
    return kept


def _numbered(candidates: Sequence[str]) -> str:
    return "\n".join(f"{i}. {c}" for i, c in enumerate(candidates, 1))


def _need_members(name: str, members: Sequence[Runnable], at_least: int) -> tuple[Runnable, ...]:
    if len(members) < at_least:
        raise ConfigError(
            f"ensemble {name!r} needs at least {at_least} member(s), got {len(members)}"
        )
    return tuple(members)


class GenerateRank(Ensemble):
    """Generate N candidates in parallel, then a judge model picks the best one.

    Args:
        name: the ensemble's name.
        members: the runnables producing candidates (the same agent N times is fine
            when it samples).
        judge: the model that ranks.
    """

    def __init__(
        self, name: str, members: Sequence[Runnable], judge: Backend, instructions: str = ""
    ) -> None:
        super().__init__(name, instructions or "Answers several times and keeps the best answer.")
        self.members = _need_members(name, members, 1)
        self.judge = judge

    async def arun(self, task: str) -> EnsembleResult:
        log = self._log()
        candidates = await _generate(self.members, task, log)
        if not candidates:
            return log.result("failed", "", candidates)
        if len(candidates) == 1:
            log("rank", "1", "only one candidate")
            return log.result("done", candidates[0], candidates)
        listing = _numbered(candidates)
        judged = await self._judge(self.judge, "ensemble_rank", Ranking).arun(
            render("ensemble_candidates", task=task, listing=listing)
        )
        ranking: Ranking | None = judged.output
        if ranking is None or ranking.best > len(candidates):
            log("rank", "1", f"judge gave no valid pick ({judged.stop_reason}); kept the first")
            return log.result("done", candidates[0], candidates)
        log("rank", str(ranking.best), ranking.reason)
        return log.result("done", candidates[ranking.best - 1], candidates)


class Fuse(Ensemble):
    """Generate N candidates in parallel, then a fuser model merges them into one answer."""

    def __init__(
        self, name: str, members: Sequence[Runnable], fuser: Backend, instructions: str = ""
    ) -> None:
        super().__init__(name, instructions or "Answers several times and merges the answers.")
        self.members = _need_members(name, members, 1)
        self.fuser = fuser

    async def arun(self, task: str) -> EnsembleResult:
        log = self._log()
        candidates = await _generate(self.members, task, log)
        if not candidates:
            return log.result("failed", "", candidates)
        fuser: Agent[str] = Agent(
            f"{self.name}-fuser", render("ensemble_fuse"), self.fuser, temperature=0.0
        )
        fused = await fuser.arun(
            render("ensemble_candidates", task=task, listing=_numbered(candidates))
        )
        if not fused.ok:
            log("fuse", "", f"fuser stopped early ({fused.stop_reason}); kept the first candidate")
            return log.result("done", candidates[0], candidates)
        log("fuse", f"{len(candidates)} candidates", fused.text[:200])
        return log.result("done", fused.text, candidates)


class CritiqueRevise(Ensemble):
    """An author answers, a critic checks, the author revises; at most ``rounds`` revisions.

    Ends ``done`` when the critic is satisfied, ``rejected`` when it never is.
    """

    def __init__(
        self,
        name: str,
        author: Runnable,
        critic: Backend,
        *,
        rounds: int = 2,
        instructions: str = "",
    ) -> None:
        super().__init__(name, instructions or author.instructions)
        if rounds < 0:
            raise ConfigError(f"ensemble {name!r}: rounds must not be negative, got {rounds}")
        self.author = author
        self.critic = critic
        self.rounds = rounds

    async def arun(self, task: str) -> EnsembleResult:
        log = self._log()
        critic = self._judge(self.critic, "ensemble_critique", Critique)
        answers: list[str] = []
        prompt = task
        for attempt in range(self.rounds + 1):
            answer = await _answer(self.author, prompt)
            if answer is None:
                log("generate", self.author.name, "no answer (failed or stopped early)")
                break
            answers.append(answer)
            checked = await critic.arun(render("ensemble_check", task=task, answer=answer))
            critique: Critique | None = checked.output
            if critique is None:
                log("critique", str(attempt + 1), f"critic gave no verdict ({checked.stop_reason})")
                break
            log("critique", str(attempt + 1), "ok" if critique.ok else critique.critique)
            if critique.ok:
                return log.result("done", answer, answers)
            prompt = render("ensemble_revise", task=task, answer=answer, critique=critique.critique)
        if not answers:
            return log.result("failed", "", answers)
        return log.result("rejected", answers[-1], answers)


class VerifyBeforeAccept(Ensemble):
    """Accept an answer only once a verifier passes it; try up to ``attempts`` times.

    Args:
        name: the ensemble's name.
        solver: the runnable that answers.
        verifier: a model that judges (a structured ``valid`` and ``reason``), or a
            deterministic :data:`Verifier` function (run the code, recompute...).
        attempts: answers tried before giving up with ``rejected``.
    """

    def __init__(
        self,
        name: str,
        solver: Runnable,
        verifier: Backend | Verifier,
        *,
        attempts: int = 3,
        instructions: str = "",
    ) -> None:
        super().__init__(name, instructions or solver.instructions)
        if attempts < 1:
            raise ConfigError(f"ensemble {name!r}: attempts must be at least 1, got {attempts}")
        self.solver = solver
        self.verifier = verifier
        self.attempts = attempts

    async def _verify(self, task: str, answer: str) -> Verdict:
        if isinstance(self.verifier, Backend):
            judge = self._judge(self.verifier, "ensemble_verify", Verdict)
            checked = await judge.arun(render("ensemble_check", task=task, answer=answer))
            return checked.output or Verdict(
                valid=False, reason=f"no verdict ({checked.stop_reason})"
            )
        passed = self.verifier(task, answer)
        if inspect.isawaitable(passed):
            passed = await passed
        return Verdict(valid=bool(passed), reason="check passed" if passed else "check failed")

    async def arun(self, task: str) -> EnsembleResult:
        log = self._log()
        answers: list[str] = []
        for attempt in range(1, self.attempts + 1):
            answer = await _answer(self.solver, task)
            if answer is None:
                log("generate", self.solver.name, "no answer (failed or stopped early)")
                continue
            answers.append(answer)
            verdict = await self._verify(task, answer)
            log(
                "verify",
                str(attempt),
                f"{'valid' if verdict.valid else 'invalid'}: {verdict.reason}",
            )
            if verdict.valid:
                return log.result("done", answer, answers)
        return log.result(
            "rejected" if answers else "failed", answers[-1] if answers else "", answers
        )


class MajorityVote(Ensemble):
    """N members answer in parallel; the answer a strict majority of them gives wins.

    Args:
        name: the ensemble's name.
        members: the voters.
        normalize: maps an answer to the key votes are counted on (default:
            trimmed, lower case, trailing full stop dropped).
        quorum: share of the members that must agree (strictly more than it).
    """

    def __init__(
        self,
        name: str,
        members: Sequence[Runnable],
        *,
        normalize: Callable[[str], str] | None = None,
        quorum: float = 0.5,
        instructions: str = "",
    ) -> None:
        super().__init__(name, instructions or "Several members answer; the majority answer wins.")
        self.members = _need_members(name, members, 2)
        if not 0.0 <= quorum < 1.0:
            raise ConfigError(f"ensemble {name!r}: quorum must be in [0, 1), got {quorum}")
        self.normalize = normalize or _default_key
        self.quorum = quorum

    async def arun(self, task: str) -> EnsembleResult:
        log = self._log()
        answers = await _answers(self.members, task)
        keys: dict[str, str] = {}
        tally: Counter[str] = Counter()
        for member, answer in zip(self.members, answers, strict=True):
            if answer is None:
                log("vote", member.name, "abstained (failed or stopped early)")
                continue
            key = self.normalize(answer)
            keys.setdefault(key, answer)
            tally[key] += 1
            log("vote", member.name, key)
        candidates = [a for a in answers if a is not None]
        if not tally:
            return log.result("failed", "", candidates)
        key, votes = tally.most_common(1)[0]
        counts = ", ".join(f"{k!r}: {n}" for k, n in tally.most_common())
        if votes > self.quorum * len(self.members):
            log("vote", key, f"majority with {votes} of {len(self.members)} ({counts})")
            return log.result("done", keys[key], candidates)
        log("vote", key, f"no majority: {votes} of {len(self.members)} ({counts})")
        return log.result("no_majority", keys[key], candidates)


def _default_key(answer: str) -> str:
    return answer.strip().rstrip(".").strip().lower()
