"""Each function-calling lever alone, side by side, case by case (BFCL and the own set).

Every case runs under every configuration before the next case starts, so a
machine whose load changes during the run (a shared one) slows every
configuration alike and the latency ratios stay fair. Configurations:

- ``baseline``: the local default without the levers (one candidate, no repetition guard);
- ``k<K>``: ``tool_sampling=K`` alone;
- ``guard``: the repetition guard alone;
- ``model``: the ``model`` selection policy, no levers.

Each run starts from an empty prefix cache (the engine's idle cached prefixes
are dropped first), so every configuration pays its own prefill and the
prefill figures show what k candidates share. Cases interleave the four
categories (BFCL ``simple_python`` and ``multiple``, own ``own_simple`` and
``own_multiple``), ``--limit`` of each after the first ``--skip``. With
``--details`` every case result is a JSON line on stderr; stdout gets one
summary line per configuration and suite::

    {"config": "k3", "suite": "bfcl", "accuracy_simple": ..., "accuracy_multiple": ...,
     "valid_rate": ..., "mean_latency_s": ..., "latency_ratio": ...,
     "prefilled_tokens_per_case": ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from plait.backends import LocalBackend
from plait.evals import FunctionCase, load_case_file, load_cases, run_case

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "bfcl"
OWN_CASES = ROOT / "benchmarks" / "data" / "own_tools.jsonl"
SUITES = {
    "simple_python": ("bfcl", "simple"),
    "multiple": ("bfcl", "multiple"),
    "own_simple": ("own", "simple"),
    "own_multiple": ("own", "multiple"),
}


def _cases(data: Path, skip: int, limit: int) -> list[FunctionCase]:
    end = skip + limit
    own = load_case_file(OWN_CASES, limit=end)
    groups = [
        load_cases(data, "simple_python", limit=end),
        load_cases(data, "multiple", limit=end),
        [c for c in own if c.category == "own_simple"],
        [c for c in own if c.category == "own_multiple"],
    ]
    return [g[i] for i in range(skip, end) for g in groups if i < len(g)]


def _summaries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        done[row["config"]].add(row["id"])
    common = set.intersection(*done.values()) if done else set()  # cases every config ran
    out = []
    baseline: dict[str, float] = {}
    for config in dict.fromkeys(r["config"] for r in rows):
        for suite in ("bfcl", "own"):
            mine = [
                r
                for r in rows
                if r["config"] == config and r["id"] in common and SUITES[r["category"]][0] == suite
            ]
            if not mine:
                continue
            line: dict[str, Any] = {"config": config, "suite": suite}
            for category, (where, short) in SUITES.items():
                those = [r for r in mine if r["category"] == category]
                if where == suite and those:
                    line[f"accuracy_{short}"] = round(sum(r["ok"] for r in those) / len(those), 4)
            n = len(mine)
            latency = sum(r["latency_s"] for r in mine) / n
            baseline.setdefault(suite, latency)
            line.update(
                valid_rate=round(sum(r["valid"] for r in mine) / n, 4),
                mean_latency_s=round(latency, 3),
                latency_ratio=round(latency / baseline[suite], 3),
                prefilled_tokens_per_case=round(sum(r["prefilled"] for r in mine) / n, 1),
                decoded_tokens_per_case=round(sum(r["decoded"] for r in mine) / n, 1),
                cases=n,
            )
            out.append(line)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=10, help="N cases per category")
    parser.add_argument("--skip", type=int, default=0, help="start after N cases per category")
    parser.add_argument("--k", type=int, default=3, help="candidates of the sampling lever")
    parser.add_argument("--details", action="store_true", help="every case as JSON on stderr")
    args = parser.parse_args()
    guarded, plain = LocalBackend(repeat_guard=True), LocalBackend(repeat_guard=False)
    configs = [
        ("baseline", plain, None, 1),
        (f"k{args.k}", plain, None, args.k),
        ("guard", guarded, None, 1),
        ("model", plain, "model", 1),
    ]
    rows: list[dict[str, Any]] = []
    try:
        for case in _cases(args.data, args.skip, args.limit):
            for name, backend, policy, k in configs:
                # Every configuration prefills its own prompt: none rides on the
                # cache another one left (the two backends share one engine).
                await plain.clear_cache()
                before = backend.stats()
                result = await run_case(case, backend, tool_selection=policy, tool_sampling=k)
                after = backend.stats()
                row = {
                    "config": name,
                    "id": result.id,
                    "category": result.category,
                    "ok": result.ok,
                    "valid": result.valid,
                    "latency_s": result.latency_s,
                    "reason": result.reason,
                    "prefilled": after.prefilled_tokens - before.prefilled_tokens,
                    "decoded": after.decode_tokens - before.decode_tokens,
                    "vote": result.vote,
                }
                rows.append(row)
                if args.details:
                    print(json.dumps(row, default=str), file=sys.stderr, flush=True)
    finally:
        await guarded.aclose()
        await plain.aclose()
    for line in _summaries(rows):
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
