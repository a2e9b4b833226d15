"""Team context with KV sharing: a supervisor's N workers share a pinned team brief.

A supervisor hires N workers on the local backend for a fixed plan (no planning,
review or aggregation calls, so only the workers are measured). Every worker's
prompt starts with the same team brief (about ``--brief-tokens``), then its own
role and task (about ``--own-tokens``), and generates ``--gen-tokens``.

Prints one JSON object: ``prefill_tokens_off`` / ``prefill_tokens_on`` (prompt
tokens the engine evaluated without / with the shared, pinned prefix) and
``ratio`` (wall time without / with, same process, same run). Target: ratio >= 3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from plait import ChatRequest
from plait.agents import AgentLimits, RoleSpec, Subtask, Supervisor, TeamPlan
from plait.backends import LocalBackend
from plait.graphs import dag_dispatch

AREAS = ["budget", "schedule", "risks", "staffing", "vendors", "testing", "security", "launch"]


def team_brief(backend: LocalBackend, n_tokens: int) -> str:
    llama = backend.load().llama
    lines, i = ["Team brief: the launch project. Facts every worker must know:"], 0
    while len(llama.tokenize("\n".join(lines).encode(), add_bos=False)) < n_tokens:
        area = AREAS[i % len(AREAS)]
        lines.append(f"Fact {i}: the {area} item {i * 7 % 13} is owned by team {i % 5}.")
        i += 1
    tokens = llama.tokenize("\n".join(lines).encode(), add_bos=False)[:n_tokens]
    return bytes(llama.detokenize(tokens)).decode("utf-8", "replace")


def plan(workers: int, own_tokens: int) -> TeamPlan:
    subtasks = []
    for w in range(workers):
        area = AREAS[w % len(AREAS)]
        words = " ".join(f"{AREAS[(w + k) % len(AREAS)]}{k}" for k in range(own_tokens // 4))
        subtasks.append(
            Subtask(
                id=f"w{w}",
                task=f"Summarize what the brief says about {words}.",
                role=RoleSpec(name=f"{area}-analyst", instructions=f"You track {area}."),
            )
        )
    return TeamPlan(subtasks=subtasks)


async def run_team(
    backend: LocalBackend, brief: str, team_plan: TeamPlan, gen: int
) -> tuple[float, int, int]:
    await backend.clear_cache()
    boss = Supervisor(
        "lead",
        backend,
        brief=brief,
        dispatch=dag_dispatch(),
        aggregate=False,
        temperature=0.0,
        worker_limits=AgentLimits(max_steps=1, max_turn_tokens=gen),
    )
    before = backend.stats()
    start = time.perf_counter()
    result = await boss.arun("Summarize the brief per area.", plan=team_plan)
    wall = time.perf_counter() - start
    if not result.ok:
        raise SystemExit(f"team run failed: {result.reason}")
    after = backend.stats()
    decoded = after.decode_tokens - before.decode_tokens
    return wall, after.prefilled_tokens - before.prefilled_tokens, decoded


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--brief-tokens", type=int, default=800)
    parser.add_argument("--own-tokens", type=int, default=50)
    parser.add_argument("--gen-tokens", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON object (always on)")
    args = parser.parse_args()

    n_ctx = (args.brief_tokens + args.own_tokens + args.gen_tokens + 128) * (args.workers + 1)
    n_seq = max(16, args.workers + 2)
    on = LocalBackend(n_ctx=n_ctx, n_seq_max=n_seq, prefix_cache=True)
    off = LocalBackend(n_ctx=n_ctx, n_seq_max=n_seq, prefix_cache=False)
    brief = team_brief(on, args.brief_tokens)
    team_plan = plan(args.workers, args.own_tokens)
    await on.complete(ChatRequest.from_prompt("Warm up.", max_tokens=2))
    await off.complete(ChatRequest.from_prompt("Warm up.", max_tokens=2))
    t_off, pre_off, dec_off = await run_team(off, brief, team_plan, args.gen_tokens)
    t_on, pre_on, dec_on = await run_team(on, brief, team_plan, args.gen_tokens)
    print(
        json.dumps(
            {
                "workers": args.workers,
                "brief_tokens": args.brief_tokens,
                "gen_tokens": args.gen_tokens,
                "wall_off_s": round(t_off, 3),
                "wall_on_s": round(t_on, 3),
                "prefill_tokens_off": pre_off,
                "prefill_tokens_on": pre_on,
                "decode_tokens_off": dec_off,
                "decode_tokens_on": dec_on,
                "ratio": round(t_off / t_on, 3),
                "target": 3.0,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
