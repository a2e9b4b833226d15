"""Human approval of flagged tasks through LangGraph interrupts and Command(resume=...)."""

import asyncio
import json

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, interrupt

from plait import ToolSpec
from plait.backends.testing import ScriptedBackend, Step
from plait.errors import PlanError
from plait.graphs import LLMCompiler, tool_runner
from tests._lookup_send import LOOKUP, lookup_send_compiler, plan_json


def finish(answer):
    return json.dumps({"action": "finish", "answer": answer})


def make_compiler(script, calls, **options):
    return lookup_send_compiler(script, calls, requires_approval={"send"}, **options)


LOOKUP_THEN_SEND = plan_json(("lookup", {"key": "x"}), ("send", {"to": "bob", "body": "$1"}))


async def test_interrupt_then_approve_runs_the_task_once():
    calls: list = []
    model, compiler = make_compiler(
        [Step(LOOKUP_THEN_SEND), Step(finish("sent"), expect="2. send")], calls
    )
    graph = compiler.graph(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}
    state = await graph.ainvoke({"question": "Send x to bob", "run_id": "t1"}, config)
    (pause,) = state["__interrupt__"]
    assert pause.value == {
        "type": "approval",
        "run_id": "t1",
        "round": 1,
        "tasks": [{"task_id": "2", "tool": "send", "args": {"to": "bob", "body": "value of x"}}],
    }
    assert calls == [("lookup", "x")]

    state = await graph.ainvoke(Command(resume="approve"), config)
    assert "__interrupt__" not in state
    # The node ran again from the top: the plan was reused (the scripted model
    # would fail on a second planner call) and the lookup was not repeated.
    assert calls == [("lookup", "x"), ("send", "bob", "value of x")]
    (round_,) = state["rounds"]
    assert round_["answer"] == "sent"
    assert "2. send" in model.requests[-1].messages[-1].content
    assert "-> sent to bob" in model.requests[-1].messages[-1].content


async def test_rejection_reaches_the_joiner_as_an_observation():
    calls: list = []
    model, compiler = make_compiler(
        [Step(LOOKUP_THEN_SEND), Step(finish("not sent"), expect="rejected by the reviewer")],
        calls,
    )
    graph = compiler.graph(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t2"}}
    await graph.ainvoke({"question": "Send x to bob", "run_id": "t2"}, config)
    state = await graph.ainvoke(
        Command(resume={"action": "reject", "reason": "bob left the company"}), config
    )
    assert calls == [("lookup", "x")]
    joiner_prompt = model.requests[-1].messages[-1].content
    assert "2. send" in joiner_prompt
    assert "SKIPPED: rejected by the reviewer: bob left the company" in joiner_prompt
    assert state["rounds"][0]["answer"] == "not sent"


async def test_edit_replaces_arguments_before_running():
    calls: list = []
    _, compiler = make_compiler([Step(LOOKUP_THEN_SEND), Step(finish("sent"))], calls)
    graph = compiler.graph(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t3"}}
    await graph.ainvoke({"question": "Send x to bob", "run_id": "t3"}, config)
    await graph.ainvoke(Command(resume={"2": {"action": "edit", "args": {"to": "alice"}}}), config)
    assert calls == [("lookup", "x"), ("send", "alice", "value of x")]


async def test_chained_approvals_on_a_durable_run(tmp_path):
    """Two flagged tasks, the second needing the first: two pauses, each task runs once."""
    calls: list = []
    plan = plan_json(("send", {"to": "a", "body": "hi"}), ("send", {"to": "b", "body": "$1"}))
    _, compiler = make_compiler(
        [Step(plan), Step(finish("both sent"), expect="sent to a")], calls, runs_dir=tmp_path
    )
    first = await compiler.arun("Send hi to a, then tell b", run_id="chain")
    assert not first.finished and first.run_id == "chain"
    assert [t["task_id"] for t in first.awaiting[0]["tasks"]] == ["1"]
    # The paused round is a record in the run's result store, beside its task results.
    assert (tmp_path / "chain" / "results.sqlite").exists()
    assert not (tmp_path / "chain" / "checkpoints.sqlite").exists()

    second = await compiler.aresume("chain", True)
    assert second.awaiting[0]["tasks"] == [
        {"task_id": "2", "tool": "send", "args": {"to": "b", "body": "sent to a"}}
    ]
    assert calls == [("send", "a", "hi")]

    done = await compiler.aresume("chain", "approve")
    assert done.finished and done.answer == "both sent" and not done.awaiting
    assert calls == [("send", "a", "hi"), ("send", "b", "sent to a")]
    # Asking again for a finished run returns it without planning or running anything.
    again = await compiler.arun("Send hi to a, then tell b", run_id="chain")
    assert again.answer == "both sent" and len(calls) == 2


async def test_answer_naming_a_task_not_awaiting_is_refused():
    calls: list = []
    _, compiler = make_compiler([Step(LOOKUP_THEN_SEND)], calls)
    graph = compiler.graph(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t4"}}
    await graph.ainvoke({"question": "Send x to bob", "run_id": "t4"}, config)
    with pytest.raises(PlanError, match=r"names task\(s\) 1, but only 2 await approval"):
        await graph.ainvoke(Command(resume={"1": "approve"}), config)
    assert calls == [("lookup", "x")]


async def test_interrupt_raised_inside_a_task_is_not_a_task_failure():
    """A tool that asks a human itself: its GraphInterrupt must reach LangGraph.

    A sibling task running meanwhile finishes (and is not run again on resume).
    """
    asked: list = []
    slow_runs: list = []

    async def ask(question):
        asked.append(question)
        return interrupt({"ask": question})

    async def slow(key):
        await asyncio.sleep(0.05)
        slow_runs.append(key)
        return f"value of {key}"

    spec = ToolSpec(
        name="ask",
        description="Ask a human.",
        parameters={"type": "object", "properties": {"question": {"type": "string"}}},
    )
    model = ScriptedBackend(
        [
            Step(plan_json(("lookup", {"key": "k"}), ("ask", {"question": "colour?"}))),
            Step(finish("blue"), expect="blue"),
        ]
    )
    compiler = LLMCompiler(model, [LOOKUP, spec], tool_runner({"ask": ask, "lookup": slow}))
    graph = compiler.graph(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t5"}}
    state = await graph.ainvoke({"question": "Favourite colour?", "run_id": "t5"}, config)
    assert state["__interrupt__"][0].value == {"ask": "colour?"}
    assert slow_runs == ["k"]
    state = await graph.ainvoke(Command(resume="blue"), config)
    assert state["rounds"][0]["run"]["outcomes"]["2"]["result"] == "blue"
    assert asked == ["colour?", "colour?"]
    assert slow_runs == ["k"]


def test_requires_approval_must_name_a_tool():
    with pytest.raises(PlanError, match="requires_approval names mail"):
        LLMCompiler(ScriptedBackend([]), [LOOKUP], tool_runner({}), requires_approval={"mail"})
