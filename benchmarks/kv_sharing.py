"""KV sharing across agents: N agents share a long context, each adds its own suffix.

Prints one JSON object: ``speedup`` (wall time with prefix sharing off / on, same
engine, same run), ``engine_limit`` (the same ratio done directly on llama.cpp:
one prefill plus ``llama_memory_seq_cp`` against N full prefills),
``efficiency`` (speedup / engine_limit) and the prefilled token counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from _raw import RawContext, timed

from plait import ChatRequest
from plait.backends import LocalBackend
from plait.backends.local._prefix_index import common_prefix

TOPICS = ["budget", "schedule", "risks", "staffing", "vendors", "testing", "security", "launch"]


def shared_context(backend: LocalBackend, n_tokens: int) -> str:
    llama = backend.load().llama
    lines, i = [], 0
    while len(llama.tokenize("\n".join(lines).encode(), add_bos=False)) < n_tokens:
        lines.append(
            f"Note {i}: the {TOPICS[i % len(TOPICS)]} item {i * 7 % 13} is owned by team {i % 5}."
        )
        i += 1
    tokens = llama.tokenize("\n".join(lines).encode(), add_bos=False)[:n_tokens]
    return bytes(llama.detokenize(tokens)).decode("utf-8", "replace")


def requests(context: str, agents: int, suffix_tokens: int, max_tokens: int) -> list[ChatRequest]:
    out = []
    for a in range(agents):
        words = " ".join(f"{TOPICS[(a + k) % len(TOPICS)]}{k}" for k in range(suffix_tokens // 3))
        out.append(
            ChatRequest.from_prompt(
                f"Agent {a}: summarize what concerns {words}.",
                system=context,
                max_tokens=max_tokens,
                temperature=0.0,
            )
        )
    return out


async def framework(backend: LocalBackend, reqs: list[ChatRequest]) -> tuple[float, int]:
    await backend.clear_cache()
    before = backend.stats().prefilled_tokens
    start = time.perf_counter()
    await asyncio.gather(*(backend.complete(r) for r in reqs))
    return time.perf_counter() - start, backend.stats().prefilled_tokens - before


def raw(backend: LocalBackend, prompts: list[list[int]], gen: int) -> tuple[float, float]:
    llama = backend.load().llama
    ctx = RawContext(llama, n_ctx=backend.load().n_ctx, n_seq=len(prompts))
    seqs = list(range(len(prompts)))

    def off() -> None:
        ctx.clear()
        nexts = ctx.prefill_many([(s, 0, p) for s, p in zip(seqs, prompts, strict=True)])
        ctx.decode_together(seqs, [len(p) for p in prompts], nexts, [gen] * len(prompts))

    def on() -> None:
        ctx.clear()
        shared = min(common_prefix(prompts[0], p) for p in prompts[1:])
        ctx.prefill(0, prompts[0][:shared])
        for s in seqs[1:]:
            llama_cpp.llama_memory_seq_cp(ctx.mem, 0, s, 0, shared)
        nexts = ctx.prefill_many(
            [(s, shared, p[shared:]) for s, p in zip(seqs, prompts, strict=True)]
        )
        ctx.decode_together(seqs, [len(p) for p in prompts], nexts, [gen] * len(prompts))

    return timed(off), timed(on)


import llama_cpp  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--prefix-tokens", type=int, default=1000)
    parser.add_argument("--suffix-tokens", type=int, default=50)
    parser.add_argument("--gen-tokens", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON object (always on)")
    args = parser.parse_args()

    n_ctx = (args.prefix_tokens + args.suffix_tokens + args.gen_tokens + 64) * args.agents
    on = LocalBackend(n_ctx=n_ctx, n_seq_max=max(16, args.agents), prefix_cache=True)
    off = LocalBackend(n_ctx=n_ctx, n_seq_max=max(16, args.agents), prefix_cache=False)
    context = shared_context(on, args.prefix_tokens)
    reqs = requests(context, args.agents, args.suffix_tokens, args.gen_tokens)
    await on.complete(ChatRequest.from_prompt("Warm up.", max_tokens=2))
    t_off, pre_off = await framework(off, reqs)
    t_on, pre_on = await framework(on, reqs)
    await on.clear_cache()

    model = on.load()
    prompts = [model.render(list(r.messages)) for r in reqs]
    raw_off, raw_on = raw(on, prompts, args.gen_tokens)
    speedup = t_off / t_on
    limit = raw_off / raw_on
    print(
        json.dumps(
            {
                "agents": args.agents,
                "prompt_tokens": sum(len(p) for p in prompts),
                "wall_off_s": round(t_off, 3),
                "wall_on_s": round(t_on, 3),
                "raw_off_s": round(raw_off, 3),
                "raw_on_s": round(raw_on, 3),
                "speedup": round(speedup, 3),
                "engine_limit": round(limit, 3),
                "efficiency": round(speedup / limit, 3),
                "prefill_tokens_off": pre_off,
                "prefill_tokens_on": pre_on,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
