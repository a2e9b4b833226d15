"""Ensemble and router-agent transcripts: votes, verification, ranking, fusing, routing."""

from __future__ import annotations

import asyncio
import json

import pytest

from plait import ChatRequest
from plait.agents import (
    Agent,
    CritiqueRevise,
    Fuse,
    GenerateRank,
    MajorityVote,
    RouterAgent,
    Supervisor,
    TeamPlan,
    VerifyBeforeAccept,
)
from plait.backends.testing import FunctionBackend, ScriptedBackend, Step
from plait.errors import BackendError, ConfigError
from plait.graphs import EagerExecutor, Plan, Task, task_runner


def agent(name: str, *replies: str) -> Agent:
    return Agent(name, f"You are {name}.", ScriptedBackend(list(replies), name=name))


async def test_majority_vote_picks_the_strict_majority() -> None:
    vote = MajorityVote("vote", [agent("a", "Paris."), agent("b", "paris"), agent("c", "Lyon")])
    result = await vote.arun("Capital of France?")
    assert result.ok and result.output == "Paris."
    votes = [d for d in result.decisions if d.kind == "vote"]
    assert [(d.subject, d.detail) for d in votes[:3]] == [
        ("a", "paris"),
        ("b", "paris"),
        ("c", "lyon"),
    ]
    assert votes[-1].detail.startswith("majority with 2 of 3")


async def test_majority_vote_reports_a_split_and_counts_failures_as_abstentions() -> None:
    broken = Agent("d", "x", ScriptedBackend([BackendError("down")], name="d"))
    split = MajorityVote("vote", [agent("a", "1"), agent("b", "2"), agent("c", "3"), broken])
    result = await split.arun("Pick a number")
    assert result.stop_reason == "no_majority" and result.output is None
    assert result.candidates == ("1", "2", "3")
    assert any(d.subject == "d" and "abstained" in d.detail for d in result.decisions)
    assert "no majority: 1 of 4" in result.decisions[-1].detail


async def test_verify_before_accept_retries_until_the_check_passes() -> None:
    solver = agent("solver", "12 * 12 = 124", "12 * 12 = 144")
    checked: list[str] = []

    def check(task: str, answer: str) -> bool:
        checked.append(answer)
        return answer.endswith(str(12 * 12))

    ensemble = VerifyBeforeAccept("checked", solver, check, attempts=3)
    result = await ensemble.arun("What is 12 * 12?")
    assert result.ok and result.output == "12 * 12 = 144"
    assert [d.detail for d in result.decisions] == ["invalid: check failed", "valid: check passed"]
    assert checked == ["12 * 12 = 124", "12 * 12 = 144"]


async def test_verify_before_accept_rejects_when_no_answer_passes_a_model_verifier() -> None:
    verifier = ScriptedBackend(
        [json.dumps({"valid": False, "reason": "wrong"})] * 2, name="verifier"
    )
    ensemble = VerifyBeforeAccept("checked", agent("s", "a", "b"), verifier, attempts=2)
    result = await ensemble.arun("task")
    assert result.stop_reason == "rejected" and result.output is None and result.text == "b"
    assert [d.detail for d in result.decisions] == ["invalid: wrong", "invalid: wrong"]
    assert "Answer: a" in verifier.requests[0].messages[-1].content


async def test_generate_rank_keeps_the_judges_pick() -> None:
    judge = ScriptedBackend(
        [Step(json.dumps({"best": 2, "reason": "it is exact"}), expect="2. 3.14159")],
        name="judge",
    )
    rank = GenerateRank("rank", [agent("a", "3"), agent("b", "3.14159")], judge)
    result = await rank.arun("What is pi?")
    assert result.output == "3.14159"
    (ranked,) = [d for d in result.decisions if d.kind == "rank"]
    assert (ranked.subject, ranked.detail) == ("2", "it is exact")


async def test_fuse_merges_candidates_and_critique_revise_loops_until_ok() -> None:
    fuser = ScriptedBackend([Step("red and blue", expect="1. red")], name="fuser")
    fused = await Fuse("fuse", [agent("a", "red"), agent("b", "blue")], fuser).arun("Colours?")
    assert fused.output == "red and blue" and fused.candidates == ("red", "blue")

    critic = ScriptedBackend(
        [
            json.dumps({"ok": False, "critique": "add a verb"}),
            json.dumps({"ok": True, "critique": ""}),
        ],
        name="critic",
    )
    author = Agent("author", "Write.", ScriptedBackend(["Dogs", "Dogs bark"], name="author"))
    result = await CritiqueRevise("cr", author, critic, rounds=2).arun("A sentence on dogs.")
    assert result.output == "Dogs bark"
    assert [d.detail for d in result.decisions] == ["add a verb", "ok"]
    revision = author.backend.requests[1].messages[-1].content  # type: ignore[attr-defined]
    assert "A critic said: add a verb" in revision


async def test_ensembles_and_supervisors_run_as_dag_tasks() -> None:
    vote = MajorityVote("vote", [agent("a", "yes"), agent("b", "yes"), agent("c", "no")])

    def team(request: ChatRequest) -> str:
        if request.agent == "boss-planner":
            return json.dumps({"subtasks": [{"id": "g", "task": "Greet."}]})
        assert "Greet" in request.messages[-1].content  # type: ignore[union-attr]
        return "team says hi"

    boss = Supervisor("boss", FunctionBackend(team), aggregate=False)
    specs, runner = task_runner(agents=[vote, boss])
    assert [s.name for s in specs] == ["vote", "boss"]
    plan = Plan(
        tasks=(
            Task(id="1", tool="vote", args={"task": "Agree?"}),
            Task(id="2", tool="boss", args={"task": "Greet after $1"}),
        )
    )
    result = await EagerExecutor(runner).run(plan)
    assert result.ok and result.results == {"1": "yes", "2": "team says hi"}


async def test_router_agent_picks_an_agent_with_reasons_and_runs_it() -> None:
    def chooser(request: ChatRequest) -> str:
        schema = request.response_schema or {}
        assert schema["properties"]["agent"]["enum"] == ["coder", "writer"]
        assert "- coder: You are coder." in request.messages[0].content  # type: ignore[union-attr]
        return json.dumps({"agent": "coder", "reason": "it asks for code"})

    coder, writer = agent("coder", "print('hi')"), agent("writer")
    router = RouterAgent("front", FunctionBackend(chooser), [coder, writer])
    result = await router.arun("Write a Python hello world.")
    assert result.ok and result.output == "print('hi')"
    assert (result.choice.agent, result.choice.reason) == ("coder", "it asks for code")
    assert result.decision.kind == "route" and list(router.decisions) == [result.decision]


def test_ensembles_reject_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        MajorityVote("v", [agent("a")])
    with pytest.raises(ConfigError, match="attempts"):
        VerifyBeforeAccept("v", agent("a"), lambda t, a: True, attempts=0)
    with pytest.raises(ConfigError, match="repeat"):
        RouterAgent("r", FunctionBackend(lambda r: ""), [agent("a"), agent("a")])
    assert isinstance(TeamPlan.model_json_schema(), dict)


def misconfigured(name: str) -> Agent:
    """A member whose backend reports a usage error (as a bad model path would)."""
    problem = ConfigError(f"backend of {name}: no model file at /nowhere.gguf")
    return Agent(name, "x", FunctionBackend(lambda r: problem, name=name))


async def test_misconfigured_voters_raise_instead_of_abstaining() -> None:
    # Three misconfigured voters are a setup mistake, not "abstained x3" and "failed".
    vote = MajorityVote("vote", [misconfigured("a"), misconfigured("b"), misconfigured("c")])
    with pytest.raises(ConfigError, match="no model file"):
        await vote.arun("Capital of France?")
    # One is enough, even among working members.
    mixed = MajorityVote("vote", [agent("a", "Paris"), misconfigured("b"), agent("c", "Paris")])
    with pytest.raises(ConfigError, match="backend of b"):
        await mixed.arun("Capital of France?")


async def test_a_misconfigured_member_surfaces_from_other_ensembles() -> None:
    judge = ScriptedBackend([json.dumps({"best": 1})], name="judge")
    rank = GenerateRank("rank", [agent("a", "3"), misconfigured("b")], judge)
    with pytest.raises(ConfigError, match="backend of b"):
        await rank.arun("pi?")
    checked = VerifyBeforeAccept("checked", misconfigured("s"), lambda t, a: True, attempts=3)
    with pytest.raises(ConfigError, match="backend of s"):
        await checked.arun("12 * 12?")


async def test_a_usage_error_cancels_the_members_still_running() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def never_answers(request: ChatRequest) -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    async def fails_once_the_other_runs(request: ChatRequest) -> BaseException:
        await started.wait()
        return ConfigError("backend of b: bad settings")

    slow = Agent("a", "x", FunctionBackend(never_answers, name="a"))
    bad = Agent("b", "x", FunctionBackend(fails_once_the_other_runs, name="b"))
    async with asyncio.timeout(30):  # guards against a hang only
        with pytest.raises(ConfigError, match="bad settings"):
            await MajorityVote("vote", [slow, bad]).arun("x")
    assert cancelled.is_set()
