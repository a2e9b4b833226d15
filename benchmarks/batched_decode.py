"""Batched decoding: N agents each generate T tokens, one at a time versus together.

Prints one JSON object: ``speedup`` (wall time one-request-at-a-time / all
concurrent, same backend, same run), ``engine_limit`` (the same ratio on raw
llama.cpp: N single-sequence decodes against one N-sequence batched decode, with
the same prompts and token counts) and ``efficiency`` (speedup / engine_limit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from _raw import RawContext, timed

from plait import ChatRequest
from plait.backends import LocalBackend

SUBJECTS = ["a lighthouse keeper", "a lost robot", "a mountain village", "a desert caravan"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object (always on)")
    args = parser.parse_args()

    backend = LocalBackend(n_ctx=2048, n_seq_max=max(16, args.agents))
    reqs = [
        ChatRequest.from_prompt(
            f"Write a long, detailed story about {SUBJECTS[a % len(SUBJECTS)]} (agent {a}).",
            max_tokens=args.tokens,
            temperature=0.0,
        )
        for a in range(args.agents)
    ]
    await backend.complete(ChatRequest.from_prompt("Warm up.", max_tokens=2))
    # Prompts are cached after this first pass, so both timed passes decode only.
    await asyncio.gather(*(backend.complete(r) for r in reqs))

    async def one_by_one() -> None:
        for r in reqs:
            await backend.complete(r)

    async def together() -> list:
        return await asyncio.gather(*(backend.complete(r) for r in reqs))

    async def timed_async(coro_fn) -> float:
        start = time.perf_counter()
        await coro_fn()
        return time.perf_counter() - start

    results = await together()
    counts = [c.usage.completion_tokens for c in results]

    model = backend.load()
    prompts = [model.render(list(r.messages)) for r in reqs]
    ctx = RawContext(model.llama, n_ctx=2048, n_seq=args.agents)
    seqs = list(range(args.agents))
    ctx.prefill_many([(s, 0, p[:-1]) for s, p in zip(seqs, prompts, strict=True)])

    def reset() -> None:
        # Keep the prompts but the last token, like the engine's cache does.
        for s, p in zip(seqs, prompts, strict=True):
            llama_cpp.llama_memory_seq_rm(ctx.mem, s, len(p) - 1, -1)

    def one_at_a_time() -> None:
        reset()
        for s, p, n in zip(seqs, prompts, counts, strict=True):
            first = ctx.decode([(s, len(p) - 1, p[-1:])])[0]
            ctx.decode_together([s], [len(p)], [first], [max(n - 1, 0)])

    def batched() -> None:
        reset()
        firsts = ctx.decode([(s, len(p) - 1, p[-1:]) for s, p in zip(seqs, prompts, strict=True)])
        ctx.decode_together(
            seqs, [len(p) for p in prompts], firsts, [max(n - 1, 0) for n in counts]
        )

    # Interleaved repeats, best of each: the machine is shared, so a slow moment
    # should not land on one side only.
    t_one = t_batched = raw_one = raw_batched = float("inf")
    for _ in range(args.repeats):
        t_one = min(t_one, await timed_async(one_by_one))
        t_batched = min(t_batched, await timed_async(together))
        raw_one = min(raw_one, timed(one_at_a_time))
        raw_batched = min(raw_batched, timed(batched))
    speedup = t_one / t_batched
    limit = raw_one / raw_batched
    print(
        json.dumps(
            {
                "agents": args.agents,
                "tokens": counts,
                "wall_one_at_a_time_s": round(t_one, 3),
                "wall_batched_s": round(t_batched, 3),
                "raw_one_at_a_time_s": round(raw_one, 3),
                "raw_batched_s": round(raw_batched, 3),
                "speedup": round(speedup, 3),
                "engine_limit": round(limit, 3),
                "efficiency": round(speedup / limit, 3),
                "mean_batch_sequences": round(backend.stats().mean_batch_sequences, 2),
            }
        )
    )


import llama_cpp  # noqa: E402

if __name__ == "__main__":
    asyncio.run(main())
