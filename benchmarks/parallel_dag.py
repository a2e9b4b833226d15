"""Orchestration benchmark for the eager DAG executor; prints one JSON object.

Tools sleep and planners are scripted, so the figures measure scheduling, not a
model. Everything is measured side by side in one run.

- fanout_speedup: 8 independent 200 ms tool calls, eager executor vs a
  ReAct-style loop making one call per model turn (limit: 8).
- eager_vs_superstep: an uneven DAG (a 3-step branch of 100 ms steps beside a
  1-step 300 ms branch, then a join, repeated 3 times) run by plait and by the
  same DAG as a LangGraph graph with static edges; makespan / critical path.
- overhead_us_per_task: 2,000 no-op tasks in a wide and deep DAG, with the
  in-memory store; overhead_us_per_task_sqlite: the same with the durable
  SQLite store (every task and result committed to disk).
- first_task_before_plan_end: the first task starts before a slowly streamed
  plan has finished.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import operator
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from plait.backends.testing import ScriptedBackend
from plait.chat import ChatRequest
from plait.graphs import EagerExecutor, Plan, ResultStore, SQLiteResultStore, Task
from plait.graphs.dag import parse_plan_stream
from plait.messages import ToolCall, ToolMessage


async def sleeping_tool(task: Task, args: dict[str, Any]) -> str:
    await asyncio.sleep(float(task.args.get("ms", 0)) / 1000)
    return task.id


async def fanout_speedup(n: int = 8, ms: int = 200) -> dict[str, float]:
    plan = Plan(tasks=tuple(Task(id=str(i), tool="sleep", args={"ms": ms}) for i in range(n)))
    started = time.perf_counter()
    await EagerExecutor(sleeping_tool).run(plan)
    eager = time.perf_counter() - started

    # ReAct: the model asks for one call per turn, sees its result, asks again.
    script = [ToolCall(name="sleep", arguments={"ms": ms}) for _ in range(n)] + ["done"]
    model = ScriptedBackend(script)
    request = ChatRequest.from_prompt("do eight lookups")
    started = time.perf_counter()
    while True:
        completion = await model.complete(request)
        if not completion.tool_calls:
            break
        call = completion.tool_calls[0]
        await asyncio.sleep(call.parsed_arguments()["ms"] / 1000)
        result = ToolMessage(content="ok", tool_call_id=call.id)
        request = request.with_messages([*request.messages, completion.message, result])
    react = time.perf_counter() - started
    return {"fanout_speedup": react / eager, "fanout_limit": float(n)}


def uneven_plan(repeats: int = 3) -> tuple[Plan, float]:
    tasks: list[Task] = []
    previous: tuple[str, ...] = ()
    for r in range(repeats):
        a1 = Task(id=f"r{r}a1", tool="sleep", args={"ms": 100}, depends_on=previous)
        a2 = Task(id=f"r{r}a2", tool="sleep", args={"ms": 100}, depends_on=(a1.id,))
        a3 = Task(id=f"r{r}a3", tool="sleep", args={"ms": 100}, depends_on=(a2.id,))
        b = Task(id=f"r{r}b", tool="sleep", args={"ms": 300}, depends_on=previous)
        join = Task(id=f"r{r}j", tool="sleep", args={"ms": 0}, depends_on=(a3.id, b.id))
        tasks += [a1, a2, a3, b, join]
        previous = (join.id,)
    plan = Plan(tasks=tuple(tasks))
    _, critical = plan.critical_path({t.id: float(t.args["ms"]) / 1000 for t in tasks})
    return plan, critical


async def plait_makespan(plan: Plan) -> float:
    started = time.perf_counter()
    await EagerExecutor(sleeping_tool).run(plan)
    return time.perf_counter() - started


async def langgraph_makespan(plan: Plan) -> float:
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        done: Annotated[list[str], operator.add]

    graph = StateGraph(State)
    for task in plan.tasks:

        async def node(state: State, task: Task = task) -> dict[str, list[str]]:
            await sleeping_tool(task, {})
            return {"done": [task.id]}

        graph.add_node(task.id, node)
    g = plan.graph()
    for task in plan.tasks:
        preds = sorted(g.predecessors(task.id))
        if not preds:
            graph.add_edge(START, task.id)
        elif len(preds) == 1:
            graph.add_edge(preds[0], task.id)
        else:
            graph.add_edge(preds, task.id)  # waits for all of them
        if not list(g.successors(task.id)):
            graph.add_edge(task.id, END)
    app = graph.compile()
    started = time.perf_counter()
    await app.ainvoke({"done": []})
    return time.perf_counter() - started


async def eager_vs_superstep() -> dict[str, float]:
    plan, critical = uneven_plan()
    ours = await plait_makespan(plan)
    theirs = await langgraph_makespan(plan)
    return {
        "critical_path_s": critical,
        "plait_makespan_over_critical_path": ours / critical,
        "langgraph_makespan_over_critical_path": theirs / critical,
    }


async def noop(task: Task, args: dict[str, Any]) -> int:
    return 0


def wide_and_deep_plan(width: int, depth: int) -> Plan:
    tasks = []
    for layer in range(depth):
        for i in range(width):
            deps = (f"{layer - 1}_{i}", f"{layer - 1}_{(i + 1) % width}") if layer else ()
            tasks.append(Task(id=f"{layer}_{i}", tool="noop", depends_on=deps))
    return Plan(tasks=tuple(tasks))


async def us_per_task(plan: Plan, store: ResultStore | None = None) -> float:
    # Garbage left by the sections before (LangGraph's above all) is collected
    # now, not on this measurement's clock.
    gc.collect()
    started = time.perf_counter()
    result = await EagerExecutor(noop, store=store).run(plan)
    elapsed = time.perf_counter() - started
    assert result.ok
    return elapsed / len(plan.tasks) * 1e6


async def overhead_us_per_task(width: int = 40, depth: int = 50) -> dict[str, float]:
    plan = wide_and_deep_plan(width, depth)
    in_memory = await us_per_task(plan)
    # The durable store commits every task and every result before going on.
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteResultStore(Path(folder) / "results.sqlite")
        try:
            sqlite = await us_per_task(plan, store)
        finally:
            store.close()
    return {
        "tasks": float(len(plan.tasks)),
        "overhead_us_per_task": in_memory,
        "overhead_us_per_task_sqlite": sqlite,
    }


async def first_task_before_plan_end() -> dict[str, Any]:
    async def slow_plan() -> AsyncIterator[str]:
        for line in ["1. sleep(ms=50)\n", "2. sleep(ms=50)\n", "3. sleep(ms=50)\n", "join()\n"]:
            await asyncio.sleep(0.1)
            yield line

    plan_done_at: list[float] = []
    started = time.perf_counter()

    async def watched() -> AsyncIterator[str]:
        async for line in slow_plan():
            yield line
        plan_done_at.append(time.perf_counter() - started)

    events = []
    await EagerExecutor(sleeping_tool, on_event=events.append).run(parse_plan_stream(watched()))
    first_start = min(e.at for e in events if e.kind == "started")
    plan_end = plan_done_at[0] if plan_done_at else max(e.at for e in events if e.kind == "planned")
    return {"first_task_before_plan_end": first_start < plan_end}


async def main() -> dict[str, Any]:
    out: dict[str, Any] = {}
    out.update(await fanout_speedup())
    out.update(await eager_vs_superstep())
    out.update(await overhead_us_per_task())
    out.update(await first_task_before_plan_end())
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output form)")
    parser.parse_args()
    print(
        json.dumps(
            {k: round(v, 3) if isinstance(v, float) else v for k, v in asyncio.run(main()).items()}
        )
    )
