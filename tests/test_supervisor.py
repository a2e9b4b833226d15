"""Supervisor transcripts: decomposition, review, escalation, budget, nesting."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from plait import ChatRequest
from plait.agents import Agent, Review, RoleSpec, Subtask, Supervisor, TeamPlan
from plait.backends.routing import CostLedger, Price
from plait.backends.testing import FunctionBackend
from plait.errors import BackendError, ConfigError
from plait.graphs import dag_dispatch


def last(request: ChatRequest) -> str:
    return getattr(request.messages[-1], "content", "") or ""


def system(request: ChatRequest) -> str:
    return getattr(request.messages[0], "content", "") or ""


def plan_json(*subtasks: dict[str, Any]) -> str:
    return json.dumps({"subtasks": list(subtasks)})


def sub(id: str, task: str, role: str = "writer", **kw: Any) -> dict[str, Any]:
    return {"id": id, "task": task, "role": {"name": role, "instructions": f"You {role}."}, **kw}


@pytest.mark.parametrize("dispatch", [None, dag_dispatch()], ids=["gather", "dag"])
async def test_goal_is_split_into_parallel_workers_and_aggregated(dispatch: Any) -> None:
    both_started = asyncio.Event()
    started: set[str] = set()

    async def model(request: ChatRequest) -> str:
        agent = request.agent or ""
        if agent == "boss-planner":
            assert "Goal: compare tea and coffee" in last(request)
            return plan_json(
                sub("tea", "Describe tea."),
                sub("coffee", "Describe coffee."),
                sub("compare", "Compare them.", role="judge", needs=["tea", "coffee"]),
            )
        if agent in ("writer-tea", "writer-coffee"):
            started.add(agent)
            if len(started) == 2:
                both_started.set()
            # Each worker waits for the other: passes only if they run concurrently.
            await asyncio.wait_for(both_started.wait(), 5)
            return f"{agent.split('-')[1]} is a drink"
        if agent == "judge-compare":
            assert "[tea] tea is a drink" in last(request)
            assert "[coffee] coffee is a drink" in last(request)
            return "both are drinks"
        if agent == "boss-aggregator":
            assert "Goal: compare tea and coffee" in last(request)
            return "Tea and coffee are both drinks."
        raise AssertionError(f"unexpected caller {agent}")

    backend = FunctionBackend(model, name="local")
    boss = Supervisor("boss", backend, brief="Team brief: be short.", dispatch=dispatch)
    result = await boss.arun("compare tea and coffee")

    assert result.ok and result.output == "Tea and coffee are both drinks."
    trace = result.trace
    assert [d.subject for d in trace.of_kind("hire")] == ["tea", "coffee", "compare"]
    assert all(d.backend == "local" for d in trace.of_kind("hire"))
    assert "judge: You judge." in trace.of_kind("role")[2].detail
    assert [w.status for w in trace.workers] == ["accepted"] * 3
    assert len(trace.of_kind("release")) == 3
    kinds = [d.kind for d in trace.decisions]
    assert kinds[0] == "plan" and kinds[-1] == "aggregate"
    # The team brief comes first in every prompt of the team (shared prefix).
    assert all(system(r).startswith("Team brief: be short.") for r in backend.requests)
    json.loads(trace.model_dump_json())


async def test_failed_review_escalates_worker_to_stronger_backend() -> None:
    local = FunctionBackend(lambda r: "2 + 2 = 5", name="local")
    strong = FunctionBackend(lambda r: "2 + 2 = 4", name="api")

    async def reviewer(subtask: Subtask, answer: str) -> Review:
        if answer.endswith("4"):
            return Review(verdict="accept")
        return Review(verdict="reassign", feedback="the sum is wrong")

    ledger = CostLedger(prices={"api": Price(prompt_per_1k=1.0, completion_per_1k=2.0)})
    boss = Supervisor("boss", local, workers=[local, strong], reviewer=reviewer, ledger=ledger)
    plan = TeamPlan(subtasks=[Subtask(id="add", task="What is 2 + 2?")])
    result = await boss.arun("add numbers", plan=plan)

    assert result.ok and result.output == "2 + 2 = 4"
    assert result.trace.decisions[0].detail == "given: add: What is 2 + 2?"
    (escalation,) = result.trace.of_kind("escalate")
    assert escalation.backend == "api" and "review failed on local" in escalation.detail
    assert [d.detail for d in result.trace.of_kind("review")] == [
        "reassign: the sum is wrong",
        "accept",
    ]
    (worker,) = result.trace.workers
    assert worker.backends == ("local", "api") and worker.attempts == 2
    assert "the sum is wrong" in last(strong.requests[0])  # feedback reaches the new worker
    assert worker.cost > 0 and result.spend_by_worker == {"worker-add": worker.cost}
    assert worker.cost == pytest.approx(ledger.report().cost_by_agent["worker-add"])


async def test_retry_with_feedback_then_accept() -> None:
    answers = iter(["draft", "final"])
    backend = FunctionBackend(lambda r: next(answers), name="local")
    verdicts = iter([Review(verdict="retry", feedback="be final"), Review(verdict="accept")])

    async def reviewer(subtask: Subtask, answer: str) -> Review:
        return next(verdicts)

    boss = Supervisor("boss", backend, reviewer=reviewer, aggregate=False)
    plan = TeamPlan(subtasks=[Subtask(id="a", task="Write.")])
    result = await boss.arun("write", plan=plan)
    assert result.output == "final"
    assert [d.detail for d in result.trace.of_kind("retry")] == ["be final"]
    assert "Your previous answer was:\ndraft" in last(backend.requests[1])


async def test_hard_subtask_starts_on_stronger_tier_and_agent_reviewer_is_used() -> None:
    def model(request: ChatRequest) -> str:
        if request.agent == "boss-reviewer":
            assert "Answer: deep answer" in last(request)
            return json.dumps({"verdict": "accept", "feedback": "fine"})
        return "deep answer"

    local, api = FunctionBackend(model, name="local"), FunctionBackend(model, name="api")
    boss = Supervisor("boss", local, workers=[local, api], reviewer=local, aggregate=False)
    plan = TeamPlan(subtasks=[Subtask(id="a", task="Prove it.", hard=True)])
    result = await boss.arun("prove", plan=plan)
    assert result.ok and result.trace.of_kind("hire")[0].backend == "api"
    assert "skipped the cheapest tier" in result.trace.of_kind("hire")[0].detail
    assert result.trace.of_kind("review")[0].detail == "accept: fine"


async def test_budget_exhaustion_stops_hiring_with_partial_result() -> None:
    backend = FunctionBackend(lambda r: f"done by {r.agent}", name="api")
    # One worker is planned at ~(prompt/3 + 256 completion tokens) * price; the cap
    # fits two of them.
    price = Price(prompt_per_1k=1.0, completion_per_1k=1.0)
    ledger = CostLedger(prices={"api": price}, budget=1.2)
    boss = Supervisor("boss", backend, ledger=ledger, aggregate=False)
    plan = TeamPlan(subtasks=[Subtask(id=f"s{i}", task=f"Part {i}.") for i in (1, 2, 3)])
    result = await boss.arun("three parts", plan=plan)

    assert result.stop_reason == "budget" and not result.ok
    assert "subtask s3 could not be hired within budget" in result.reason
    assert [w.status for w in result.trace.workers] == ["accepted", "accepted", "not_hired"]
    assert "[s1] done by worker-s1" in result.output and "s3" not in result.output
    (skip,) = result.trace.of_kind("skip_hire")
    assert skip.subject == "s3" and "budget of 1.2" in skip.detail
    assert ledger.total_cost <= 1.2
    spend = result.spend_by_worker
    assert spend["worker-s1"] > 0 and spend["worker-s2"] > 0 and spend[""] == 0


async def test_nested_supervisor_runs_within_depth_and_is_refused_beyond() -> None:
    def model(request: ChatRequest) -> str:
        if request.agent == "outer-planner":
            return plan_json({"id": "deep", "task": "Go deeper.", "agent": "inner"})
        if request.agent == "inner-planner":
            return plan_json(sub("leaf", "Say hi."))
        return "hi"

    backend = FunctionBackend(model, name="local")
    inner = Supervisor("inner", backend, aggregate=False)
    outer = Supervisor("outer", backend, agents=[inner], aggregate=False, max_depth=1)
    result = await outer.arun("nest")
    assert result.ok and result.output == "hi"
    (worker,) = result.trace.workers
    assert worker.child is not None and worker.child.depth == 1
    assert worker.child.workers[0].output == "hi"

    shallow = Supervisor("outer", backend, agents=[inner], aggregate=False, max_depth=0)
    refused = await shallow.arun("nest")
    assert refused.stop_reason == "depth"
    assert "depth 1 is over 0" in refused.reason
    assert refused.trace.of_kind("depth_limit")[0].subject == "deep"
    assert refused.trace.workers[0].status == "not_hired"


async def test_inner_supervisor_inherits_the_tighter_depth_limit() -> None:
    def model(request: ChatRequest) -> str:
        below = {"a-planner": "b", "b-planner": "c"}[request.agent or ""]
        return plan_json({"id": "x", "task": "t", "agent": below})

    backend = FunctionBackend(model)
    c = Supervisor("c", backend, max_depth=5)
    b = Supervisor("b", backend, agents=[c], max_depth=5)
    a = Supervisor("a", backend, agents=[b], max_depth=1, aggregate=False)
    result = await a.arun("go")
    child = result.trace.workers[0].child
    assert child is not None and child.stop_reason == "depth"
    assert child.of_kind("depth_limit")[0].detail.endswith("depth 2 is over 1")
    assert result.stop_reason == "failed" and result.trace.workers[0].status == "failed"


async def test_failed_worker_skips_its_dependants() -> None:
    backend = FunctionBackend(lambda r: "bad", name="local")

    async def reviewer(subtask: Subtask, answer: str) -> Review:
        return Review(verdict="retry", feedback="no")

    boss = Supervisor("boss", backend, reviewer=reviewer, max_attempts=2, aggregate=False)
    plan = TeamPlan(
        subtasks=[
            Subtask(id="a", task="A.", role=RoleSpec(name="w", instructions="Work.")),
            Subtask(id="b", task="B.", needs=("a",)),
        ]
    )
    result = await boss.arun("go", plan=plan)
    assert result.stop_reason == "failed" and "a, b" in result.reason
    assert [w.status for w in result.trace.workers] == ["rejected", "failed"]
    assert len(backend.requests) == 2  # two attempts of a, none of b


def test_bad_configuration_and_plans_are_rejected() -> None:
    backend = FunctionBackend(lambda r: "x")
    with pytest.raises(ConfigError, match="max_attempts"):
        Supervisor("boss", backend, max_attempts=0)
    twins = [Agent("a", "A.", backend), Agent("a", "Also A.", backend)]
    with pytest.raises(ConfigError, match="supervisor 'boss': agent names repeat"):
        Supervisor("boss", backend, agents=twins)
    with pytest.raises(ValueError, match="not earlier subtasks"):
        TeamPlan(subtasks=[Subtask(id="a", task="A.", needs=("b",))])
    with pytest.raises(ValueError, match="used twice"):
        TeamPlan(subtasks=[Subtask(id="a", task="A."), Subtask(id="a", task="B.")])


async def test_planning_refused_by_the_budget_ends_cleanly_without_calls() -> None:
    backend = FunctionBackend(lambda r: "never called", name="api")
    ledger = CostLedger(prices={"api": Price(completion_per_1k=10.0)}, budget=0.01)
    result = await Supervisor("boss", backend, ledger=ledger).arun("anything")
    assert result.stop_reason == "budget" and result.output == ""
    assert "planning was refused by the budget" in result.reason
    assert backend.requests == [] and ledger.total_cost == 0
    assert result.trace.of_kind("plan")[0].detail.startswith("no plan:")


async def test_inconsistent_model_plans_are_repaired_and_the_fixes_traced() -> None:
    def model(request: ChatRequest) -> str:
        if request.agent == "boss-planner":
            return plan_json(sub("x", "One."), sub("x", "Two.", needs=["nope"]))
        return f"did {last(request)}"

    result = await Supervisor("boss", FunctionBackend(model), aggregate=False).arun("go")
    assert result.ok and [w.subtask for w in result.trace.workers] == ["x", "x_2"]
    detail = result.trace.of_kind("plan")[0].detail
    assert "renamed the repeated id 'x' to 'x_2'" in detail and "dropped needs ['nope']" in detail


@pytest.mark.parametrize("dispatch", [None, dag_dispatch()], ids=["gather", "dag"])
async def test_a_misconfigured_worker_surfaces_while_a_failing_one_fails_its_subtask(
    dispatch: Any,
) -> None:
    def model(problem: BaseException) -> FunctionBackend:
        def answer(request: ChatRequest) -> Any:
            return problem if request.agent == "w-a" else "fine"

        return FunctionBackend(answer, name="local")

    plan = TeamPlan(
        subtasks=[
            Subtask(id="a", task="A.", role=RoleSpec(name="w", instructions="Work.")),
            Subtask(id="b", task="B.", role=RoleSpec(name="w", instructions="Work.")),
        ]
    )
    down = Supervisor("boss", model(BackendError("down")), aggregate=False, dispatch=dispatch)
    result = await down.arun("go", plan=plan)
    assert [w.status for w in result.trace.workers] == ["failed", "accepted"]
    assert "BackendError: down" in result.trace.workers[0].output
    bad = model(ConfigError("worker backend: unknown model 'gtp-4'"))
    boss = Supervisor("boss", bad, aggregate=False, dispatch=dispatch)
    with pytest.raises(ConfigError, match="unknown model 'gtp-4'"):
        await boss.arun("go", plan=plan)


async def test_a_misconfigured_planner_surfaces_instead_of_no_plan() -> None:
    backend = FunctionBackend(lambda r: ConfigError("planner backend: bad settings"))
    with pytest.raises(ConfigError, match="bad settings"):
        await Supervisor("boss", backend).arun("anything")
