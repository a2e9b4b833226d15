"""Critical-path priority on the local engine: one uneven plan, priorities against FIFO.

The plan: a chain ``a1 -> a2 -> a3`` of short model calls (each continues the
one before), six independent long calls ``x1..x6`` (each summarises a long
note: their prompts together fill several ``n_batch`` batches, so prefill rows
wait for room), and a joiner that waits on all of them. Every task is an agent
on the embedded model, run by the eager executor.

Two modes, side by side in one process, alternating for ``--rounds``:

- ``priority``: the plan as a :class:`~plait.graphs.Plan`, so each task's model
  request carries its critical-path priority (depth to the sink);
- ``fifo``: the same tasks fed as a stream, whose shape the executor cannot
  know, so every request has priority 0 and the engine serves arrival order.

Every round starts on an empty prefix cache (``clear_cache``), so neither mode
reuses the other's prompts. The KV cache is q8_0, which keeps greedy output
the same whatever the batch holds (``batch_invariance.py``): ``identical``
compares every task's answer between the modes.

To say why a ratio is what it is, the same requests also run in isolation:
``chain_alone_s`` (the three chain calls one after another, nothing else on the
engine) and ``side_alone_s`` (the six long calls together, nothing else). No
schedule of the plan can end before ``max(chain_alone_s, side_alone_s)`` plus
the joiner, so ``bound_over_fifo`` is the best ratio any order could reach on
this machine.

``starved`` counts model requests that did not finish (a task not ``done``, or
fewer finished engine requests than the plan's ten) over every round of both
modes; ``max_queue_wait_s`` is the longest wait from submission to admission.

With ``--json`` one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from plait.agents import Agent, AgentLimits
from plait.backends import LocalBackend
from plait.backends.local import _admission
from plait.graphs import EagerExecutor, Plan, Task

TOPICS = ["harbour", "orchard", "library", "railway", "bakery", "observatory"]


def _note(topic: str, sentences: int) -> str:
    lines = [
        f"Item {i}: the {topic} team recorded that shipment {i * 7 % 13} arrived "
        f"{i % 5} days late and was stored in hall {i % 3}."
        for i in range(sentences)
    ]
    return " ".join(lines)


def uneven_plan(note_sentences: int) -> Plan:
    chain = [
        Task(id="a1", tool="step", args={"text": "Start a short story about a lighthouse."}),
        Task(id="a2", tool="step", args={"text": "$a1"}, depends_on=("a1",)),
        Task(id="a3", tool="step", args={"text": "$a2"}, depends_on=("a2",)),
    ]
    side = [
        Task(id=f"x{i + 1}", tool="summarise", args={"text": _note(t, note_sentences)})
        for i, t in enumerate(TOPICS)
    ]
    join = Task(
        id="join",
        tool="join",
        args={"text": " | ".join(f"${t.id}" for t in [*chain, *side])},
        depends_on=tuple(t.id for t in [*chain, *side]),
    )
    # The side calls come first, as a planner listing its lookups would write them.
    return Plan(tasks=(*side, *chain, join))


def _agents(backend: LocalBackend, chain_tokens: int, side_tokens: int) -> dict[str, Agent]:
    def agent(name: str, instructions: str, tokens: int) -> Agent:
        limits = AgentLimits(max_steps=1, max_turn_tokens=tokens, timeout_s=None)
        return Agent(
            name=name, instructions=instructions, backend=backend, limits=limits, temperature=0.0
        )

    return {
        "step": agent("writer", "Continue the story in two or three sentences.", chain_tokens),
        "summarise": agent("summariser", "Summarise the note in one paragraph.", side_tokens),
        "join": agent("joiner", "Combine these parts into one short answer.", 24),
    }


async def _run(
    backend: LocalBackend, agents: dict[str, Agent], plan: Plan, tasks: list[Task] | None
) -> dict[str, Any]:
    async def runner(task: Task, args: dict[str, Any]) -> str:
        result = await agents[task.tool].arun(str(args["text"]))
        return result.text

    await backend.clear_cache()
    engine = backend.load().engine
    before = engine.stats().requests
    started = time.perf_counter()
    # A Plan gets critical-path priorities; a stream of tasks runs neutral (FIFO).
    result = await EagerExecutor(runner).run(plan if tasks is None else iter(tasks))
    makespan = time.perf_counter() - started
    stats = engine.stats()
    finished = stats.requests - before
    outcomes = result.outcomes
    chain_end, join = outcomes["a3"], outcomes["join"]
    return {
        "makespan_s": makespan,
        "chain_done_s": chain_end.finished_at or makespan,
        "join_s": (join.finished_at or 0.0) - (join.started_at or 0.0),
        "answers": {k: o.result for k, o in outcomes.items()},
        "starved": sum(o.status != "done" for o in outcomes.values())
        + max(0, len(plan.tasks) - finished),
        "max_queue_wait_s": max((r.queue_wait_s for r in stats.recent[-finished:]), default=0.0)
        if finished
        else 0.0,
    }


async def _alone(backend: LocalBackend, agents: dict[str, Agent], plan: Plan) -> dict[str, float]:
    """The chain alone and the side calls alone: what bounds any schedule."""
    by_id = {t.id: t for t in plan.tasks}
    await backend.clear_cache()
    started = time.perf_counter()
    text = str(by_id["a1"].args["text"])
    for _ in range(3):
        text = (await agents["step"].arun(text)).text
    chain = time.perf_counter() - started
    await backend.clear_cache()
    started = time.perf_counter()
    side = [t for t in plan.tasks if t.tool == "summarise"]
    await asyncio.gather(*(agents["summarise"].arun(str(t.args["text"])) for t in side))
    return {"chain_alone_s": chain, "side_alone_s": time.perf_counter() - started}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chain-tokens", type=int, default=48)
    parser.add_argument("--side-tokens", type=int, default=48)
    parser.add_argument("--note-sentences", type=int, default=14)
    parser.add_argument("--n-seq-max", type=int, default=None, help="default: from settings")
    parser.add_argument("--n-threads", type=int, default=None, help="default: from settings")
    parser.add_argument("--aging-s", type=float, default=None, help="default: the engine's")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.aging_s is not None:
        _admission.AGING_S = args.aging_s
    backend = LocalBackend(
        n_seq_max=args.n_seq_max, n_threads=args.n_threads, type_k="q8_0", type_v="q8_0"
    )
    agents = _agents(backend, args.chain_tokens, args.side_tokens)
    plan = uneven_plan(args.note_sentences)
    runs: dict[str, list[dict[str, Any]]] = {"priority": [], "fifo": []}
    for _ in range(args.rounds):  # alternating, so a load change hits both modes
        runs["fifo"].append(await _run(backend, agents, plan, list(plan.tasks)))
        runs["priority"].append(await _run(backend, agents, plan, None))
    alone = await _alone(backend, agents, plan)
    fifo, prio = _median(runs["fifo"], "makespan_s"), _median(runs["priority"], "makespan_s")
    join = statistics.median(r["join_s"] for r in runs["fifo"] + runs["priority"])
    answers = [r["answers"] for r in runs["fifo"] + runs["priority"]]
    result = {
        "n_seq_max": backend.load().engine.options.n_seq_max,
        "n_threads": backend.load().engine.options.n_threads,
        "aging_s": _admission.AGING_S,
        "makespan_fifo_s": round(fifo, 2),
        "makespan_priority_s": round(prio, 2),
        "makespan_priority_over_fifo": round(prio / fifo, 3),
        "chain_done_fifo_s": round(_median(runs["fifo"], "chain_done_s"), 2),
        "chain_done_priority_s": round(_median(runs["priority"], "chain_done_s"), 2),
        "chain_alone_s": round(alone["chain_alone_s"], 2),
        "side_alone_s": round(alone["side_alone_s"], 2),
        "join_s": round(join, 2),
        "bound_over_fifo": round(
            (max(alone["chain_alone_s"], alone["side_alone_s"]) + join) / fifo, 3
        ),
        "starved": sum(r["starved"] for r in runs["fifo"] + runs["priority"]),
        "max_queue_wait_s": round(
            max(r["max_queue_wait_s"] for r in runs["fifo"] + runs["priority"]), 3
        ),
        "identical": all(a == answers[0] for a in answers),
        "rounds": args.rounds,
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
