"""A LangGraph graph as a task of a plait plan, built and run with LangGraph's own API."""

from __future__ import annotations

import json
import operator
import sys
import textwrap
from typing import Annotated, Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from pydantic import BaseModel
from typing_extensions import TypedDict

from plait import tracing
from plait.agents import Agent
from plait.backends.testing import ScriptedBackend, Step
from plait.errors import ConfigError, ToolError, ToolPermissionError
from plait.graphs import (
    EagerExecutor,
    LLMCompiler,
    Plan,
    SQLiteResultStore,
    Task,
    load_workflow,
    task_runner,
)
from plait.graphs.langgraph import langgraph_tool
from plait.messages import ToolCall
from plait.tools import Permissions, ToolLimits, tool


class Review(TypedDict, total=False):
    text: str
    draft: str
    verdict: str
    visited: Annotated[list[str], operator.add]


def _draft(state: Review) -> dict[str, Any]:
    return {"draft": state["text"].strip().upper(), "visited": ["draft"]}


def _judge(state: Review) -> dict[str, Any]:
    return {"verdict": f"checked: {state['draft']}", "visited": ["judge"]}


def _broken_judge(state: Review) -> dict[str, Any]:
    raise ValueError(f"cannot judge {state['draft']!r}")


def _asking_judge(state: Review) -> dict[str, Any]:
    answer = interrupt({"question": f"is {state['draft']!r} fine?"})
    return {"verdict": f"reviewer said {answer}", "visited": ["judge"]}


def review_graph(judge=_judge) -> Any:
    """Two nodes in a row: draft, then judge."""
    builder = StateGraph(Review)
    builder.add_node("draft", _draft)
    builder.add_node("judge", judge)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "judge")
    builder.add_edge("judge", END)
    return builder.compile()


def review_tool(judge=_judge, **options: Any):
    options.setdefault("output_key", "verdict")
    return langgraph_tool(
        review_graph(judge), name="review", description="Review a text.", **options
    )


@tool
def shout(text: str) -> str:
    """Say a text louder.

    Args:
        text: what to say.
    """
    return f"{text}!"


@tool(pure=True)
def count_words(text: str) -> int:
    """Count the words of a text.

    Args:
        text: the text.
    """
    return len(text.split())


async def test_a_two_node_graph_is_a_plan_task_between_tool_tasks(tmp_path):
    _, runner = task_runner([shout, review_tool(), count_words])
    plan = Plan(
        tasks=(
            Task(id="1", tool="shout", args={"text": "ship it"}),
            Task(id="2", tool="review", args={"text": "$1"}),
            Task(id="3", tool="count_words", args={"text": "$2"}),
            Task(id="4", tool="count_words", args={"text": "one two three"}),
        )
    )
    store = SQLiteResultStore(tmp_path / "results.sqlite")  # results must be JSON data
    with tracing.record_to(tmp_path / "trace.jsonl"):
        run = await EagerExecutor(runner, store=store).run(plan, run_id="r1")
    store.close()
    assert run.ok, run.outcomes
    # Both nodes ran, in order, on the output of the tool task before.
    assert run.results["2"] == "checked: SHIP IT!"
    assert run.results["3"] == 3 and run.results["4"] == 3
    # The graph's call went through the tool pipeline, as any tool task does.
    names = [r["name"] for r in tracing.read_trace(tmp_path / "trace.jsonl")]
    assert "execute_tool review" in names and "execute_tool shout" in names


async def test_without_output_key_the_result_is_the_final_state_as_json_data():
    _, runner = task_runner([review_tool(output_key=None)])
    run = await EagerExecutor(runner).run(
        Plan(tasks=(Task(id="1", tool="review", args={"text": " hi "}),))
    )
    assert run.results["1"] == {
        "text": " hi ",
        "draft": "HI",
        "verdict": "checked: HI",
        "visited": ["draft", "judge"],
    }
    json.dumps(run.results["1"])  # storable as it is


async def test_the_planner_sees_the_graph_s_input_schema_and_plans_it_beside_tools():
    specs, runner = task_runner([shout, review_tool()])
    review_spec = next(s for s in specs if s.name == "review")
    assert set(review_spec.parameters["properties"]) >= {"text", "draft", "verdict"}
    plan = {
        "tasks": [
            {"tool": "shout", "args": {"text": "ready"}},
            {"tool": "review", "args": {"text": "$1"}},
        ]
    }
    planner = ScriptedBackend(
        [
            Step(json.dumps(plan), expect="then review it"),
            Step(json.dumps({"action": "finish", "answer": "Checked."}), expect="checked: READY!"),
        ]
    )
    compiler = LLMCompiler(planner, specs, runner, tool_selection="model")
    result = await compiler.arun("Shout 'ready', then review it.")
    assert result.finished and result.answer == "Checked."
    assert "Review a text." in planner.requests[0].messages[0].content
    (round_,) = result.rounds
    assert round_.run.results == {"1": "ready!", "2": "checked: READY!"}


async def test_a_graph_failing_in_a_node_fails_its_task_naming_the_graph_and_node():
    _, runner = task_runner([shout, review_tool(_broken_judge), count_words])
    plan = Plan(
        tasks=(
            Task(id="1", tool="review", args={"text": "x"}),
            Task(id="2", tool="count_words", args={"text": "$1"}),
            Task(id="3", tool="shout", args={"text": "still here"}),
        )
    )
    run = await EagerExecutor(runner).run(plan)
    failed = run.outcomes["1"]
    assert failed.status == "failed" and isinstance(failed.exception, ToolError)
    message = str(failed.exception)
    assert "'review'" in message and "node 'judge'" in message and "ValueError" in message
    assert isinstance(failed.exception.__cause__, ValueError)
    assert run.outcomes["2"].status == "skipped"
    assert run.results["3"] == "still here!"


async def test_a_graph_pausing_outside_any_langgraph_run_fails_its_task_saying_so():
    _, runner = task_runner([shout, review_tool(_asking_judge)])
    plan = Plan(
        tasks=(
            Task(id="1", tool="review", args={"text": "draft"}),
            Task(id="2", tool="shout", args={"text": "beside"}),
        )
    )
    run = await EagerExecutor(runner).run(plan)
    paused = run.outcomes["1"]
    assert paused.status == "failed" and isinstance(paused.exception, ToolError)
    assert "interrupt()" in str(paused.exception)
    assert "is 'DRAFT' fine?" in str(paused.exception)  # what the graph asked
    assert run.results["2"] == "beside!"


async def test_inside_a_langgraph_node_the_graph_s_interrupt_pauses_the_outer_graph():
    _, runner = task_runner([shout, review_tool(_asking_judge)])
    plan = Plan(
        tasks=(
            Task(id="1", tool="shout", args={"text": "go"}),
            Task(id="2", tool="review", args={"text": "$1"}),
        )
    )

    class Outer(TypedDict, total=False):
        results: dict[str, Any]

    async def run_plan(state: Outer) -> dict[str, Any]:
        run = await EagerExecutor(runner).run(plan)
        return {"results": run.results}

    builder = StateGraph(Outer)
    builder.add_node("run_plan", run_plan)
    builder.add_edge(START, "run_plan")
    builder.add_edge("run_plan", END)
    outer = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}

    paused = await outer.ainvoke({}, config)
    (asked,) = paused["__interrupt__"]
    assert asked.value == {"question": "is 'GO!' fine?"}
    assert "results" not in paused

    done = await outer.ainvoke(Command(resume="yes"), config)
    assert done["results"] == {"1": "go!", "2": "reviewer said yes"}


async def test_a_graph_task_is_limited_and_permitted_like_any_tool():
    limits = ToolLimits(max_output_chars=5)
    permissions = Permissions({"guest": ["shout"]})
    _, runner = task_runner(
        [shout, review_tool()], limits=limits, permissions=permissions, role="guest"
    )
    run = await EagerExecutor(runner).run(
        Plan(tasks=(Task(id="1", tool="review", args={"text": "x"}),))
    )
    assert isinstance(run.outcomes["1"].exception, ToolPermissionError)

    _, runner = task_runner([review_tool()], limits=limits)
    run = await EagerExecutor(runner).run(
        Plan(tasks=(Task(id="1", tool="review", args={"text": "abc"}),))
    )
    assert run.results["1"].startswith("check\n[... truncated")


async def test_an_agent_calls_a_graph_through_its_tool_runner():
    agent = Agent(
        "editor",
        "Review texts.",
        ScriptedBackend([ToolCall(name="review", arguments={"text": "fine"}), "Reviewed."]),
        tools=[review_tool()],
    )
    answered = await agent.arun("Review 'fine'.")
    (call,) = answered.trace.tool_calls
    assert call.error is None and call.result == "checked: FINE"


async def test_bad_arguments_are_refused_before_the_graph_runs():
    calls: list[str] = []

    def counting_draft(state: Review) -> dict[str, Any]:
        calls.append(state["text"])
        return _draft(state)

    class Strict(BaseModel):
        text: str

    builder = StateGraph(Review)
    builder.add_node("draft", counting_draft)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", END)
    strict = langgraph_tool(
        builder.compile(), name="strict", description="Draft.", input_schema=Strict
    )
    _, runner = task_runner([strict])
    run = await EagerExecutor(runner).run(
        Plan(tasks=(Task(id="1", tool="strict", args={"text": 3}),))
    )
    assert run.outcomes["1"].status == "failed" and "text" in run.outcomes["1"].error
    assert calls == []


def test_what_cannot_become_a_tool_is_refused_with_the_reason():
    builder = StateGraph(Review)
    builder.add_node("draft", _draft)
    builder.add_edge(START, "draft")
    with pytest.raises(ConfigError, match="compile the graph first"):
        langgraph_tool(builder, name="g", description="")
    with pytest.raises(ConfigError, match="needs a compiled LangGraph graph"):
        langgraph_tool(shout, name="g", description="")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="output_key 'answer' is not a key"):
        langgraph_tool(review_graph(), name="g", description="", output_key="answer")


def test_a_state_pydantic_cannot_read_asks_for_an_input_schema():
    import typing

    class Plain(typing.TypedDict):  # pydantic refuses typing.TypedDict before Python 3.12
        text: str

    builder = StateGraph(Plain)
    builder.add_node("echo", lambda state: state)
    builder.add_edge(START, "echo")
    graph = builder.compile()
    if sys.version_info < (3, 12):
        with pytest.raises(ConfigError, match="give input_schema="):
            langgraph_tool(graph, name="echo", description="")
    schema = {"type": "object", "properties": {"text": {"type": "string"}}}
    made = langgraph_tool(graph, name="echo", description="", input_schema=schema)
    assert made.parameters["properties"] == {"text": {"type": "string"}}


FLOWS = """
from typing_extensions import TypedDict
from langgraph.graph import END, START, StateGraph

from plait.graphs.langgraph import langgraph_tool


class Note(TypedDict, total=False):
    text: str
    tidy: str
    title: str


builder = StateGraph(Note)
builder.add_node("tidy", lambda state: {"tidy": " ".join(state["text"].split())})
builder.add_node("title", lambda state: {"title": state["tidy"].title()})
builder.add_edge(START, "tidy")
builder.add_edge("tidy", "title")
builder.add_edge("title", END)
graph = builder.compile()
title_tool = langgraph_tool(
    graph, name="title_tool", description="Title a note.", output_key="title"
)
"""


async def test_a_workflow_file_names_a_graph_or_a_graph_tool_as_a_function(tmp_path):
    (tmp_path / "flows.py").write_text(FLOWS)
    (tmp_path / "wf.yaml").write_text(
        textwrap.dedent(
            """\
            tools:
              note: {function: "flows:graph", description: "Tidy and title a note."}
              titled: {function: "flows:title_tool"}
              calculator: {builtin: calculator}
            workflow:
              kind: steps
              output: "${whole} / ${title} / ${sum}"
              steps:
                - {id: whole, tool: note, args: {text: "  plait   and langgraph "}}
                - {id: title, tool: titled, args: {text: "one  two"}}
                - {id: sum, tool: calculator, args: {expression: "2 + 3"}}
            """
        )
    )
    workflow = load_workflow(tmp_path / "wf.yaml", runs_dir=tmp_path / "runs")
    result = await workflow.arun(run_id="g1")
    assert result.results["whole"]["title"] == "Plait And Langgraph"
    assert result.results["title"] == "One Two"
    assert result.answer.endswith("/ One Two / 5")


def test_under_ray_a_graph_task_stays_on_the_driver(tmp_path):
    # A compiled graph does not survive pickling, so it never travels to a worker.
    from plait.graphs.workflows._placement import driver_tasks

    (tmp_path / "flows.py").write_text(FLOWS)
    (tmp_path / "wf.yaml").write_text(
        textwrap.dedent(
            """\
            tools:
              note: {function: "flows:graph", description: "Tidy and title a note."}
              calculator: {builtin: calculator}
            workflow:
              kind: steps
              executor: ray
              steps:
                - {id: whole, tool: note, args: {text: "a note"}}
                - {id: sum, tool: calculator, args: {expression: "2 + 3"}}
            """
        )
    )
    workflow = load_workflow(tmp_path / "wf.yaml", runs_dir=tmp_path / "runs")
    stay = driver_tasks(workflow.spec, workflow._built, [])
    assert "note" in stay and "calculator" not in stay


async def test_both_directions_a_graph_task_pauses_the_planner_s_own_graph():
    from plait.graphs.langgraph import planner_graph

    ran: list[str] = []

    @tool
    def note(text: str) -> str:
        """Note a text down.

        Args:
            text: the text.
        """
        ran.append(text)
        return f"noted {text}"

    specs, runner = task_runner([note, review_tool(_asking_judge)])
    plan = {
        "tasks": [
            {"tool": "note", "args": {"text": "beside"}},
            {"tool": "review", "args": {"text": "draft"}},
        ]
    }
    planner = ScriptedBackend(
        [
            Step(json.dumps(plan), expect="Review the draft."),
            Step(json.dumps({"action": "finish", "answer": "Reviewed."}), expect="reviewer said"),
        ]
    )
    compiler = LLMCompiler(planner, specs, runner, tool_selection="model")
    graph = planner_graph(compiler, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "both"}}

    paused = await graph.ainvoke({"question": "Review the draft.", "run_id": "both"}, config)
    (asked,) = paused["__interrupt__"]
    assert asked.value == {"question": "is 'DRAFT' fine?"}

    done = await graph.ainvoke(Command(resume="fine"), config)
    (round_,) = done["rounds"]
    assert round_["answer"] == "Reviewed."
    assert ran == ["beside"]  # the finished sibling task is not run again
    assert len(planner.requests) == 2  # planned once, joined once


def test_the_facade_offers_both_directions_and_nothing_else():
    import plait.graphs.langgraph as edge
    from plait.graphs.compiler._langgraph_edge import planner_graph

    assert edge.__all__ == ["LLMCompiler", "langgraph_tool", "planner_graph"]
    assert edge.planner_graph is planner_graph and edge.LLMCompiler is LLMCompiler
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        edge.not_a_name  # noqa: B018
