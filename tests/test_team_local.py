"""A supervisor with two workers on the real embedded model (short; structure, not wisdom)."""

from __future__ import annotations

import pytest

from plait.agents import AgentLimits, RoleSpec, Subtask, Supervisor, TeamPlan
from plait.graphs import dag_dispatch

pytestmark = pytest.mark.local_model

BRIEF = "Team brief: this team names fruits and colours. " + " ".join(
    f"Fact {i}: fruit number {i} is sweet and grows on a tree." for i in range(20)
)


async def test_two_workers_share_the_pinned_team_prefix(local_backend) -> None:
    boss = Supervisor(
        "boss",
        local_backend,
        brief=BRIEF,
        dispatch=dag_dispatch(),
        aggregate=False,
        temperature=0.0,
        worker_limits=AgentLimits(max_steps=1, max_turn_tokens=8),
    )
    plan = TeamPlan(
        subtasks=[
            Subtask(
                id="fruit",
                task="Name one fruit.",
                role=RoleSpec(name="a", instructions="Be short."),
            ),
            Subtask(
                id="colour",
                task="Name one colour.",
                role=RoleSpec(name="b", instructions="Be short."),
            ),
        ]
    )
    brief_tokens = len(local_backend.load().llama.tokenize(BRIEF.encode(), add_bos=False))
    before = local_backend.stats().requests
    result = await boss.arun("fruit and colour", plan=plan)

    assert result.ok, result.reason
    assert [w.status for w in result.trace.workers] == ["accepted", "accepted"]
    assert all(w.output.strip() and w.usage.completion_tokens > 0 for w in result.trace.workers)
    stats = local_backend.stats()
    # The pin prefilled the brief once; both workers then reused it from the cache.
    worker_requests = stats.recent[-2:]
    assert stats.requests - before == 3  # one pin + two workers
    assert all(r.reused_tokens >= brief_tokens - 2 for r in worker_requests)
    assert all(w.usage.cached_prompt_tokens >= brief_tokens - 2 for w in result.trace.workers)
    releases = result.trace.of_kind("release")
    assert len(releases) == 2 and releases[-1].detail.endswith("team prefix unpinned")


async def test_supervisor_reviews_and_aggregates_two_workers_on_the_embedded_model(
    local_backend,
) -> None:
    # Planning by the model is exercised by the README example; here the plan is
    # given so the run does not depend on what a 135M model plans.
    boss = Supervisor(
        "lead",
        local_backend,
        brief="You are a helpful team.",
        reviewer=local_backend,
        temperature=0.0,
        worker_limits=AgentLimits(max_steps=1, max_turn_tokens=12),
    )
    plan = TeamPlan(
        subtasks=[
            Subtask(id="en", task="Say hello in English."),
            Subtask(id="fr", task="Say hello in French."),
        ]
    )
    result = await boss.arun("Say hello in English and in French.", plan=plan)
    trace = result.trace
    assert [d.kind for d in trace.decisions][:5] == ["plan", "role", "hire", "role", "hire"]
    assert len(trace.of_kind("review")) >= 2  # the model reviewer judged every answer
    assert all(w.backends[0] == "local:default" and w.attempts >= 1 for w in trace.workers)
    assert trace.of_kind("aggregate") and len(trace.of_kind("release")) == 2
    assert result.stop_reason in ("done", "failed")  # verdicts are the model's call
    if result.ok:
        assert result.output.strip()
