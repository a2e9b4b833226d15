import asyncio
import json

import pytest

from plait import ToolSpec
from plait.backends.testing import ScriptedBackend, Step
from plait.errors import ConfigError, ModelOutputError, PlanError
from plait.graphs import EagerExecutor, LLMCompiler, Plan, Task, tool_runner
from plait.graphs.compiler._prompts import plan_schema

ADD = ToolSpec(
    name="add",
    description="Add two numbers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
)
FLAKY = ToolSpec(
    name="lookup",
    description="Look a key up.",
    parameters={"type": "object", "properties": {"key": {"type": "string"}}},
)


def plan_json(*tasks: tuple[str, dict]) -> str:
    return json.dumps({"tasks": [{"tool": t, "args": a} for t, a in tasks]})


def finish(answer: str) -> str:
    return json.dumps({"action": "finish", "answer": answer})


def functions(calls: list):
    async def add(a: float, b: float) -> float:
        calls.append(("add", a, b))
        await asyncio.sleep(0)
        return a + b

    def lookup(key: str) -> str:
        calls.append(("lookup", key))
        if key == "missing":
            raise KeyError(key)
        return f"value of {key}"

    return tool_runner({"add": add, "lookup": lookup})


async def test_json_plan_runs_with_references_and_joins():
    calls: list = []
    model = ScriptedBackend(
        [
            Step(
                plan_json(
                    ("add", {"a": 1, "b": 2}),
                    ("add", {"a": 3, "b": 4}),
                    ("add", {"a": "$1", "b": "$2"}),
                ),
                expect="What is (1+2)+(3+4)?",
            ),
            Step(finish("10"), expect="3. add"),
        ]
    )
    compiler = LLMCompiler(model, [ADD, FLAKY], functions(calls))
    result = await compiler.arun("What is (1+2)+(3+4)?")
    assert result.answer == "10" and result.finished
    assert ("add", 3, 7) in calls and len(calls) == 3
    (round_,) = result.rounds
    assert round_.run.results == {"1": 3, "2": 7, "3": 10}
    planner_request = model.requests[0]
    assert planner_request.response_schema is not None
    assert "add(a, b): Add two numbers." in planner_request.messages[0].content
    joiner_prompt = model.requests[1].messages[-1].content
    assert '3. add({"a": "$1", "b": "$2"}) -> 10' in joiner_prompt
    assert result.usage.total_tokens > 0


async def test_failed_task_leads_to_replan_with_feedback():
    calls: list = []
    model = ScriptedBackend(
        [
            plan_json(("lookup", {"key": "missing"})),
            json.dumps({"action": "replan", "answer": "use key 'colour' instead"}),
            Step(plan_json(("lookup", {"key": "colour"})), expect="use key 'colour' instead"),
            finish("blue"),
        ]
    )
    result = await LLMCompiler(model, [ADD, FLAKY], functions(calls)).arun("favourite colour?")
    assert result.answer == "blue" and len(result.rounds) == 2
    replan_prompt = model.requests[2].messages[-1].content
    assert "FAILED: KeyError: 'missing'" in replan_prompt


async def test_max_replans_ends_unfinished():
    replan = json.dumps({"action": "replan", "answer": "try again"})
    model = ScriptedBackend([plan_json(("lookup", {"key": "k"})), replan] * 2)
    result = await LLMCompiler(model, [FLAKY], functions([]), max_replans=1).arun("q")
    assert not result.finished and len(result.rounds) == 2
    model.assert_exhausted()


async def test_text_plan_runs_while_streaming():
    calls: list = []
    plan = "Thought: add twice.\n1. add(1, 2)\n2. add(a=$1, b=10)\n3. join()\n"
    model = ScriptedBackend([plan, finish("13")])
    compiler = LLMCompiler(model, [ADD], functions(calls), plan_format="text")
    result = await compiler.arun("(1+2)+10?")
    assert result.answer == "13"
    assert result.rounds[0].run.results == {"1": 3, "2": 13}
    assert model.requests[0].response_schema is None


# A plan the model wrote that does not validate is a run-time failure of the
# model's output (ModelOutputError, with the raw text), not a usage error: the
# PlanError saying what is wrong is its cause. PlanError is for plans a caller gives.


async def test_streamed_plan_using_an_unknown_tool_is_bad_model_output():
    model = ScriptedBackend(["1. ad(a=1, b=2)\n"])
    compiler = LLMCompiler(model, [ADD], functions([]), plan_format="text")
    with pytest.raises(ModelOutputError, match="task 1: unknown tool 'ad'") as caught:
        await compiler.arun("x")
    assert isinstance(caught.value.__cause__, PlanError)
    assert caught.value.raw == "1. ad(a=1, b=2)\n"


async def test_streamed_plan_with_bad_arguments_is_bad_model_output():
    model = ScriptedBackend(["1. add(a=1, c=2)\n"])
    compiler = LLMCompiler(model, [ADD], functions([]), plan_format="text")
    with pytest.raises(ModelOutputError, match="unknown argument") as caught:
        await compiler.arun("x")
    assert isinstance(caught.value.__cause__, PlanError) and "add(a=1, c=2)" in caught.value.raw


async def test_json_plan_with_bad_arguments_is_bad_model_output():
    text = plan_json(("add", {"a": 1}))
    model = ScriptedBackend([text])
    with pytest.raises(
        ModelOutputError, match="task 1: bad arguments for 'add': missing required"
    ) as caught:
        await LLMCompiler(model, [ADD], functions([])).arun("x")
    assert isinstance(caught.value.__cause__, PlanError) and caught.value.raw == text


async def test_aplan_raises_bad_model_output_and_aexecute_a_plan_error():
    model = ScriptedBackend(["1. ad(a=1, b=2)\n"])
    compiler = LLMCompiler(model, [ADD], functions([]), plan_format="text")
    with pytest.raises(ModelOutputError, match="unknown tool 'ad'"):
        await compiler.aplan("x")
    # A plan the caller gives is checked as usage: PlanError, as before.
    given = Plan(tasks=(Task(id="1", tool="ad", args={}),))
    with pytest.raises(PlanError, match="unknown tool 'ad'"):
        await compiler.aexecute("x", given)


async def test_malformed_planner_and_joiner_output_are_model_output_errors():
    with pytest.raises(ModelOutputError, match="planner's plan is malformed"):
        await LLMCompiler(ScriptedBackend(['{"steps": []}']), [ADD], functions([])).arun("x")
    model = ScriptedBackend([plan_json(("add", {"a": 1, "b": 1})), '{"verdict": "ok"}'])
    with pytest.raises(ModelOutputError, match="joiner's reply is not a valid decision"):
        await LLMCompiler(model, [ADD], functions([])).arun("x")


def test_plan_schema_allows_references_in_typed_arguments():
    compiler = LLMCompiler(ScriptedBackend([]), [ADD], functions([]))
    item = plan_schema(compiler.tools, compiler.max_tasks)["properties"]["tasks"]["items"]
    a_schema = item["properties"]["args"]["properties"]["a"]
    assert a_schema["anyOf"][0] == {"type": "number"}
    assert a_schema["anyOf"][1]["pattern"] == "^[$][1-9][0-9]?$"


async def test_graph_is_a_langgraph_graph_that_streams_rounds():
    model = ScriptedBackend([plan_json(("add", {"a": 1, "b": 1})), finish("2")])
    graph = LLMCompiler(model, [ADD], functions([])).graph()
    updates = [u async for u in graph.astream({"question": "1+1?", "run_id": "g1", "rounds": []})]
    assert list(updates[0]) == ["plan_and_execute"]
    assert updates[0]["plan_and_execute"]["rounds"][0]["answer"] == "2"


@pytest.mark.local_model
async def test_embedded_model_drives_a_full_round(local_backend):
    # The 135M default model plans poorly; what is guaranteed is the machinery:
    # a schema-valid plan of real tools ran, and the joiner's decision parsed.
    calls: list = []
    compiler = LLMCompiler(local_backend, [ADD], functions(calls), max_replans=0, max_tasks=3)
    result = await compiler.arun("What is 3 plus 4?")
    (round_,) = result.rounds
    assert 1 <= len(round_.plan.tasks) <= 3
    assert all(t.tool == "add" for t in round_.plan.tasks)
    assert calls and round_.run.ok
    assert round_.action in ("finish", "replan")


async def test_a_usage_error_in_a_task_ends_the_loop_when_the_executor_stops_on_them():
    from plait.errors import ConfigError
    from plait.graphs import EagerExecutor

    problem = ConfigError("lookup: no service URL is configured")

    async def runner(task, args):
        raise problem

    model = ScriptedBackend([plan_json(("lookup", {"key": "k"})), finish("unused")])
    executor = EagerExecutor(runner, stop_on_usage_error=True)
    compiler = LLMCompiler(model, [FLAKY], runner, executor=executor)
    with pytest.raises(ConfigError) as raised:
        await compiler.arun("Look k up.")
    assert raised.value is problem


async def test_an_executor_brings_its_own_runner():
    model = ScriptedBackend([plan_json(("add", {"a": 2, "b": 3})), finish("5")])
    calls: list = []
    compiler = LLMCompiler(model, [ADD], executor=EagerExecutor(functions(calls)))
    result = await compiler.arun("2+3?")
    assert result.answer == "5"
    assert calls == [("add", 2, 3)]


def test_a_compiler_without_runner_or_executor_is_refused():
    with pytest.raises(ConfigError, match="needs a runner"):
        LLMCompiler(ScriptedBackend([]), [ADD])
