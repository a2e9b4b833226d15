"""The planner loop as a LangGraph graph, for LangGraph users (:meth:`LLMCompiler.graph`).

A thin graph over the plain loop (:class:`~._loop.PlannerRun`): the node
``plan_and_execute`` brings one round to its join and appends it to the
state's ``rounds``; a round paused for approval goes to the node ``approve``,
which calls :func:`langgraph.types.interrupt` once with the round's request and
stores the answer (``Command(resume=...)``) in the round's record. The loop's
records live in the compiler's executor store, keyed by the run id, so when
LangGraph runs a node again from its start (after a resume) the loop returns
what is stored at once: nothing is planned or run twice. One interrupt per node
execution keeps LangGraph's matching of answers to interrupts trivial.
LangGraph's control flow (an ``interrupt()`` raised by a tool inside a task)
passes through the loop untouched.
"""

from __future__ import annotations

import operator
from collections.abc import Hashable
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig

from ._loop import PlannerRun
from ._rounds import RoundRecord

if TYPE_CHECKING:
    from ._compiler import LLMCompiler

__all__ = ["planner_graph"]


class _State(TypedDict, total=False):
    question: str
    run_id: str
    rounds: Annotated[list[dict[str, Any]], operator.add]
    # The approval request of the paused round (None once answered).
    awaiting: dict[str, Any] | None


def planner_graph(compiler: LLMCompiler, checkpointer: Any = None) -> Any:
    """``compiler``'s loop as a compiled LangGraph ``StateGraph``."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    async def opened(state: _State, config: RunnableConfig) -> PlannerRun:
        run_id = state.get("run_id") or config.get("configurable", {}).get("thread_id")
        if not run_id:
            from plait.errors import ConfigError

            raise ConfigError(
                'the planner graph needs a run id: invoke it with {"question": ...,'
                ' "run_id": ...} or a "thread_id" in its config'
            )
        return await PlannerRun.open(compiler, run_id, compiler.executor, state.get("question"))

    async def plan_and_execute(state: _State, config: RunnableConfig) -> dict[str, Any]:
        run = await opened(state, config)
        record = await run.round(len(state.get("rounds") or ()) + 1)
        return _update(record)

    async def approve(state: _State, config: RunnableConfig) -> dict[str, Any]:
        request = state.get("awaiting")
        assert request is not None
        answer = interrupt(request)
        run = await opened(state, config)
        # Parsed against the request this node asked, so a node run again after
        # a crash applies the same answer to the same tasks.
        await run.answer(answer, request)
        record = await run.round(int(request["round"]))
        return {"awaiting": None, **_update(record)}

    def next_node(state: _State) -> str:
        if state.get("awaiting"):
            return "approve"
        rounds = state.get("rounds") or []
        wants_more = bool(rounds) and rounds[-1]["action"] == "replan"
        return "plan_and_execute" if wants_more and len(rounds) <= compiler.max_replans else "end"

    routes: dict[Hashable, str] = {
        "approve": "approve",
        "plan_and_execute": "plan_and_execute",
        "end": END,
    }
    builder = StateGraph(_State)
    builder.add_node("plan_and_execute", plan_and_execute)
    builder.add_node("approve", approve)
    builder.add_edge(START, "plan_and_execute")
    builder.add_conditional_edges("plan_and_execute", next_node, routes)
    builder.add_conditional_edges("approve", next_node, routes)
    return builder.compile(checkpointer=checkpointer)


def _update(record: RoundRecord) -> dict[str, Any]:
    """The state update for a round: its approval request, or the joined round."""
    if record.asked:
        return {"awaiting": record.asked}
    return {"rounds": [record.round().model_dump(mode="json")]}
