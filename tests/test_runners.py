import pytest
from pydantic import BaseModel

from plait.agents import Agent
from plait.backends.testing import ScriptedBackend
from plait.errors import PlanError
from plait.graphs import EagerExecutor, Plan, SQLiteResultStore, Task, task_runner
from plait.tools import tool


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
