"""The planner loop's round records: what a durable run keeps, pauses, resumes and refuses."""

import json
import sqlite3

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from plait.backends.testing import Step
from plait.errors import ConfigError, PlanError
from plait.graphs import EagerExecutor, SQLiteResultStore, tool_runner
from plait.graphs.compiler import ApprovalGate
from plait.graphs.compiler._rounds import RoundLog
from tests._lookup_send import lookup_send_compiler, plan_json


def decide(action, answer):
    return json.dumps({"action": action, "answer": answer})


async def test_a_durable_run_keeps_one_typed_record_per_round(tmp_path):
    calls: list = []
    model, compiler = lookup_send_compiler(
        [
            Step(plan_json(("lookup", {"key": "a"}))),
            Step(decide("replan", "need b")),
            Step(plan_json(("lookup", {"key": "b"})), expect="Joiner: need b"),
            Step(decide("finish", "a and b"), expect="value of b"),
        ],
        calls,
        runs_dir=tmp_path,
    )
    result = await compiler.arun("Look a and b up", run_id="two")
    assert result.finished and result.answer == "a and b" and len(result.rounds) == 2

    store = SQLiteResultStore(tmp_path / "two" / "results.sqlite")
    try:
        log = RoundLog(store, "two")
        assert await log.question() == "Look a and b up"
        first, second = await log.rounds()
    finally:
        store.close()
    assert (first.number, first.exec_id, second.exec_id) == (1, "two-1", "two-2")
    assert first.plan is not None and [t.args for t in first.plan.tasks] == [{"key": "a"}]
    assert first.joined is not None and first.joined.action == "replan"
    assert second.joined is not None and second.joined.answer == "a and b"
    assert first.asked is None and first.decisions == {}
    assert first.round() == result.rounds[0]

    # Asked again, the finished run is read back: no model call, no task.
    requests = len(model.requests)
    again = await compiler.arun("Look a and b up", run_id="two")
    assert again.answer == "a and b" and again.rounds == result.rounds
    assert len(model.requests) == requests and len(calls) == 2


async def test_a_run_without_an_id_pauses_resumes_and_is_then_released(tmp_path):
    calls: list = []
    _, compiler = lookup_send_compiler(
        [
            Step(plan_json(("lookup", {"key": "x"}), ("send", {"to": "bob", "body": "$1"}))),
            Step(decide("finish", "sent"), expect="sent to bob"),
        ],
        calls,
        requires_approval={"send"},
        runs_dir=tmp_path,
    )
    paused = await compiler.arun("Send x to bob")
    assert not paused.finished and paused.awaiting[0]["tasks"][0]["task_id"] == "2"
    with pytest.raises(PlanError, match="names task"):
        await compiler.aresume(paused.run_id, {"1": "approve"})  # the run stays paused
    done = await compiler.aresume(paused.run_id, "approve")
    assert done.finished and done.answer == "sent"
    assert calls == [("lookup", "x"), ("send", "bob", "value of x")]
    # Ended, the run is gone: nothing of it is kept, and nothing is created on disk.
    with pytest.raises(PlanError, match="is paused"):
        await compiler.aresume(paused.run_id, "approve")
    assert list(tmp_path.iterdir()) == []


async def test_resuming_a_run_that_is_not_paused_says_so(tmp_path):
    _, compiler = lookup_send_compiler(
        [Step(plan_json(("lookup", {"key": "x"}))), Step(decide("finish", "x"))],
        [],
        runs_dir=tmp_path,
    )
    await compiler.arun("Look x up", run_id="done")
    with pytest.raises(PlanError, match="'done' is not waiting for approval"):
        await compiler.aresume("done", "approve")


async def test_a_run_folder_with_only_old_checkpoints_is_refused_naming_the_file(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    with sqlite3.connect(folder / "checkpoints.sqlite") as db:  # what LangGraph's saver wrote
        db.execute("CREATE TABLE checkpoints (thread_id TEXT, checkpoint BLOB)")
    model, compiler = lookup_send_compiler([], [], runs_dir=tmp_path)
    checkpoints = str(folder / "checkpoints.sqlite")
    for attempt in (compiler.arun("q", run_id="old"), compiler.aresume("old", "approve")):
        with pytest.raises(ConfigError) as refused:
            await attempt
        assert checkpoints in str(refused.value) and "older version" in str(refused.value)
    assert model.requests == []


async def test_the_graph_asks_each_chained_approval_once_and_runs_each_task_once():
    calls: list = []
    plan = plan_json(("send", {"to": "a", "body": "hi"}), ("send", {"to": "b", "body": "$1"}))
    _, compiler = lookup_send_compiler(
        [Step(plan), Step(decide("finish", "both sent"), expect="sent to c")],
        calls,
        requires_approval={"send"},
    )
    graph = compiler.graph(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "g"}}
    state = await graph.ainvoke({"question": "Send hi to a, then tell b", "run_id": "g"}, config)
    assert [t["task_id"] for t in state["__interrupt__"][0].value["tasks"]] == ["1"]
    state = await graph.ainvoke(Command(resume="approve"), config)
    # The second pause asks about task 2 only: the first answer is not applied to it.
    assert [t["task_id"] for t in state["__interrupt__"][0].value["tasks"]] == ["2"]
    assert calls == [("send", "a", "hi")]
    state = await graph.ainvoke(
        Command(resume={"2": {"action": "edit", "args": {"to": "c"}}}), config
    )
    assert "__interrupt__" not in state and state["rounds"][0]["answer"] == "both sent"
    assert calls == [("send", "a", "hi"), ("send", "c", "sent to a")]


async def test_the_deprecated_approval_gate_still_pauses_a_langgraph_node():
    from typing import TypedDict

    from langgraph.graph import START, StateGraph

    from plait.graphs import Plan, Task

    class State(TypedDict, total=False):
        done: list

    sent: list = []
    executor = EagerExecutor(tool_runner({"send": lambda to: sent.append(to) or "ok"}))
    plan = Plan(tasks=(Task(id="1", tool="send", args={"to": "bob"}, requires_approval=True),))

    async def node(state: State) -> dict:
        with pytest.warns(DeprecationWarning, match="ApprovalGate is deprecated"):
            gate = ApprovalGate(executor, "r", {"run_id": "r"})
        await gate.replay()
        run = await gate.run(plan, known_tools=["send"])
        return {"done": sorted(run.results)}

    builder = StateGraph(State)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "r"}}
    state = await graph.ainvoke({}, config)
    assert state["__interrupt__"][0].value == {
        "type": "approval",
        "run_id": "r",
        "tasks": [{"task_id": "1", "tool": "send", "args": {"to": "bob"}}],
    }
    state = await graph.ainvoke(Command(resume="approve"), config)
    assert state["done"] == ["1"] and sent == ["bob"]
