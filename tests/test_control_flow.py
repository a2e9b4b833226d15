"""LangGraph control flow crosses plait: an ``interrupt()`` inside a tool pauses the graph.

A tool may pause a LangGraph graph on purpose (ask a person, wait for approval).
Every layer between the graph node and the tool (tool runner, agent turn,
ensemble member) must let LangGraph's exception through instead of reporting a
failed tool call, so the graph shows ``__interrupt__`` and resumes with
``Command(resume=...)``.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from plait import ChatRequest
from plait.agents import Agent, MajorityVote
from plait.backends.testing import FunctionBackend, ScriptedBackend
from plait.messages import ToolCall, ToolMessage
from plait.tools import ToolRunner, tool


@tool
def ask_person(question: str) -> str:
    """Ask a person and wait for the answer.

    Args:
        question: what to ask.
    """
    return str(interrupt({"question": question}))


class State(TypedDict, total=False):
    answer: str
    error: str | None


def one_node_graph(node: Any) -> Any:
    graph = StateGraph(State)
    graph.add_node("work", node)
    graph.add_edge(START, "work")
    graph.add_edge("work", END)
    return graph.compile(checkpointer=InMemorySaver())


def asks_then_reports(request: ChatRequest) -> Any:
    """A model double: call ask_person, then report what the person said."""
    last = request.messages[-1]
    if isinstance(last, ToolMessage):
        return f"The person said {last.content}."
    return ToolCall(name="ask_person", arguments={"question": "May I proceed?"})


async def pause_and_resume(graph: Any, thread: str, answer: str) -> tuple[Any, dict]:
    config = {"configurable": {"thread_id": thread}}
    paused = await graph.ainvoke({}, config)
    assert "__interrupt__" in paused, paused  # the graph paused instead of going on
    (pending,) = paused["__interrupt__"]
    resumed = await graph.ainvoke(Command(resume=answer), config)
    return pending, resumed


async def test_interrupt_in_a_tool_run_by_the_tool_runner_pauses_the_graph():
    runner = ToolRunner([ask_person])

    async def work(state: State) -> State:
        outcome = await runner.run(ToolCall(name="ask_person", arguments={"question": "Go?"}))
        return {"answer": outcome.content, "error": outcome.error}

    pending, resumed = await pause_and_resume(one_node_graph(work), "runner", "yes")
    assert pending.value == {"question": "Go?"}
    assert resumed == {"answer": "yes", "error": None}


async def test_interrupt_in_a_tool_of_an_agent_turn_pauses_the_graph():
    backend = FunctionBackend(asks_then_reports, name="asker")
    agent = Agent("asker", "Ask before acting.", backend, tools=[ask_person])

    async def work(state: State) -> State:
        result = await agent.arun("Deploy the site.")
        return {"answer": result.text, "error": None if result.ok else result.stop_reason}

    pending, resumed = await pause_and_resume(one_node_graph(work), "agent", "go ahead")
    assert pending.value == {"question": "May I proceed?"}
    assert resumed["answer"] == "The person said go ahead."
    # No tool call was ever reported failed: the first run stopped at the interrupt.
    assert not any(
        "Error" in (getattr(m, "content", "") or "") for r in backend.requests for m in r.messages
    )


async def test_interrupt_inside_an_ensemble_member_pauses_the_graph():
    asker = Agent(
        "asker", "Ask first.", FunctionBackend(asks_then_reports, name="a"), tools=[ask_person]
    )
    others = [
        Agent(n, "Answer.", ScriptedBackend(["The person said yes."] * 2, name=n))
        for n in ("b", "c")
    ]
    vote = MajorityVote("vote", [asker, *others])

    async def work(state: State) -> State:
        result = await vote.arun("Should we deploy?")
        return {"answer": result.text, "error": None if result.ok else result.stop_reason}

    pending, resumed = await pause_and_resume(one_node_graph(work), "vote", "yes")
    assert pending.value == {"question": "May I proceed?"}
    assert resumed == {"answer": "The person said yes.", "error": None}
