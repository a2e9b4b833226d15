import pytest
from pydantic import BaseModel

from plait import tracing
from plait.agents import Agent
from plait.backends.testing import ScriptedBackend
from plait.errors import PlanError, ToolPermissionError, ToolTimeout
from plait.graphs import EagerExecutor, Plan, SQLiteResultStore, Task, task_runner
from plait.messages import ToolCall
from plait.tools import Permissions, ToolLimits, tool


@tool
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: first number.
        b: second number.
    """
    return a + b


class Verdict(BaseModel):
    ok: bool
    reason: str


async def test_tools_and_agents_share_one_plan(tmp_path):
    reviewer = Agent(
        "reviewer",
        "Check a computed number.",
        ScriptedBackend(['{"ok": true, "reason": "5 is right"}']),
        output_type=Verdict,
    )
    specs, runner = task_runner([add], agents=[reviewer])
    assert [s.name for s in specs] == ["add", "reviewer"]
    assert specs[1].parameters["required"] == ["task"]
    plan = Plan(
        tasks=(
            Task(id="1", tool="add", args={"a": 2, "b": 3}),
            Task(id="2", tool="reviewer", args={"task": "Is 2 + 3 = $1?"}),
        )
    )
    executor = EagerExecutor(runner, store=SQLiteResultStore(tmp_path / "r.sqlite"))
    result = await executor.run(plan, known_tools=[s.name for s in specs])
    assert result.ok
    assert result.results == {"1": 5.0, "2": {"ok": True, "reason": "5 is right"}}
    assert "Is 2 + 3 = 5.0?" in reviewer.backend.requests[0].messages[-1].content


async def test_bad_tool_arguments_fail_the_task_with_the_reason():
    _, runner = task_runner([add])
    result = await EagerExecutor(runner).run(
        Plan(tasks=(Task(id="1", tool="add", args={"a": "x", "b": 1}),))
    )
    assert result.outcomes["1"].status == "failed"
    assert "a" in result.outcomes["1"].error


def test_a_name_used_by_a_tool_and_an_agent_is_refused():
    twin = Agent("add", "Adds.", ScriptedBackend([]))
    with pytest.raises(PlanError, match="add is both a tool and an agent"):
        task_runner([add], agents=[twin])


async def test_a_limited_and_forbidden_tool_behaves_alike_for_an_agent_and_a_plan(tmp_path):
    wiped = []

    @tool
    def report(n: int) -> str:
        """Write a report of n characters."""
        return "x" * n

    @tool
    def wipe() -> str:
        """Delete everything."""
        wiped.append(True)
        return "wiped"

    limits = ToolLimits(max_output_chars=1024)
    permissions = Permissions({"guest": ["report"]})
    script = [ToolCall(name="report", arguments={"n": 5000}), ToolCall(name="wipe"), "done"]
    agent = Agent(
        "guest",
        "Help.",
        ScriptedBackend(script),
        tools=[report, wipe],
        tool_limits=limits,
        permissions=permissions,
    )
    with tracing.record_to(tmp_path / "agent.jsonl"):
        answered = await agent.arun("Report, then clean up.")
    long_call, wipe_call = answered.trace.tool_calls

    _, runner = task_runner([report, wipe], limits=limits, permissions=permissions, role="guest")
    plan = Plan(
        tasks=(
            Task(id="1", tool="report", args={"n": 5000}),
            Task(id="2", tool="wipe"),
            Task(id="3", tool="report", args={"n": 10}),
        )
    )
    with tracing.record_to(tmp_path / "plan.jsonl"):
        run = await EagerExecutor(runner).run(plan)

    # 1 KB of output, cut the same way, with the same marker.
    assert long_call.truncated and run.results["1"] == long_call.result
    assert run.results["1"].startswith("x" * 1024 + "\n[... truncated 3976 more")
    assert run.results["3"] == "x" * 10  # within the limit: the result as the tool gave it
    # Forbidden to the role: refused for the same reason, and never run.
    refused = run.outcomes["2"]
    assert wipe_call.error == "permission" and refused.status == "failed"
    assert isinstance(refused.exception, ToolPermissionError)
    assert wipe_call.result == f"Error: {refused.exception}" and wiped == []
    # Both paths record the same execute_tool spans; the refused one failed.
    for trace in ("agent.jsonl", "plan.jsonl"):
        spans = {r["name"]: r for r in tracing.read_trace(tmp_path / trace)}
        assert spans["execute_tool wipe"]["status"] == "error"
        assert spans["execute_tool report"]["status"] != "error"
        assert spans["execute_tool report"]["attributes"]["gen_ai.agent.name"] == "guest"


async def test_a_tool_task_keeps_its_type_and_runs_under_the_tool_s_time_limit():
    import asyncio

    @tool(timeout_s=0.05)
    async def stall() -> str:
        """Wait for ever."""
        await asyncio.Event().wait()
        return "never"

    @tool
    def listing() -> list[int]:
        """Three numbers."""
        return [1, 2, 3]

    _, runner = task_runner([add, stall, listing])
    plan = Plan(
        tasks=(
            Task(id="1", tool="add", args={"a": 2, "b": 3}),
            Task(id="2", tool="add", args={"a": "$1", "b": 1}),
            Task(id="3", tool="stall"),
            Task(id="4", tool="listing"),
        )
    )
    run = await EagerExecutor(runner).run(plan)
    assert run.results["2"] == 6.0 and run.results["4"] == [1, 2, 3]
    assert isinstance(run.outcomes["3"].exception, ToolTimeout)
