"""Model-free speculative decoding on the embedded model: copy-heavy agent turns and free text.

Each prompt runs greedy twice on ``LocalBackend`` with its prompt already cached:
``speculate=0`` (one token per decode step) and ``speculate=8`` (drafts from
earlier occurrences of the last tokens, verified in one batch row). Copy-heavy
turns: a joiner answering over tool results, a document to summarise by quoting,
a replan that repeats the last plan with one change; free text: a story.

With ``--json`` one JSON object: ``speedup_copy`` / ``speedup_free`` (time without
over time with speculation, summed per group), ``identical`` (every greedy output
the same text both ways), ``acceptance`` (accepted over drafted tokens) and
``accepted_share`` (generated tokens that came from accepted drafts);
``cpu_speedup_*`` are the same ratios in this process's CPU seconds, steadier on
a machine shared with other work. ``kv_q8_0`` holds the same figures with the
KV cache stored as q8_0: llama.cpp's CPU flash attention splits the cached keys
across threads for a one-token batch over an f16 cache of 512 cells or more, and
sums them in another order than in a longer batch, so greedy output can change
with speculation (and with what else is in the batch) on the default f16 cache;
a quantized cache never takes that path (see ``batch_invariance.py``). Each KV
type runs in a process of its own (two engines in one process slow each other).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing as mp
import time
from typing import Any

from plait import ChatRequest
from plait.backends import LocalBackend

DOCUMENT = (
    "The Rhine rises in the Swiss Alps, flows through Lake Constance, forms part of the border "
    "between Germany and France, and reaches the North Sea in the Netherlands. It is about "
    "1,230 kilometres long and carries more freight than any other river in Europe."
)
RESULTS = (
    "Result of tool search (call_1):\nThe Eiffel Tower is 330 metres tall and was completed in "
    "1889 for the World's Fair in Paris.\n"
    "Result of tool calculator (call_2):\n330 * 3.281 = 1082.73"
)
PLAN = (
    '1. search(query="population of France")\n'
    '2. search(query="population of Germany")\n'
    '3. calculator(expression="$1 + $2")\n'
    "4. join()"
)

CASES = [
    (
        "copy",
        "joiner",
        f"{RESULTS}\n\nQuestion: How tall is the Eiffel Tower in feet, and when was it "
        "completed? Answer using the tool results, quoting them.",
    ),
    ("copy", "summary", f"Repeat this text word for word:\n\n{DOCUMENT}"),
    (
        "copy",
        "replan",
        f"The last plan was:\n{PLAN}\n\nWrite the plan again, the same, but search for "
        "Italy instead of Germany.",
    ),
    ("free", "story", "Write a short story about a robot who learns to paint."),
    ("free", "advice", "Give three tips for sleeping better."),
]


def timed(backend: LocalBackend, request: ChatRequest) -> tuple[str, float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    completion = backend.complete_sync(request)
    return completion.text, time.perf_counter() - started, time.process_time() - cpu


def measure(kv_type: str, max_tokens: int, verbose: bool) -> dict[str, Any]:
    """Every case with and without speculation on a KV cache stored as ``kv_type``."""
    plain = LocalBackend(n_ctx=4096, speculate=0, type_k=kv_type, type_v=kv_type)
    fast = LocalBackend(n_ctx=4096, speculate=8, type_k=kv_type, type_v=kv_type)
    seconds = {"copy": [0.0, 0.0], "free": [0.0, 0.0]}
    cpu = {"copy": [0.0, 0.0], "free": [0.0, 0.0]}
    identical = True
    drafted = accepted = generated = 0
    for group, name, prompt in CASES:
        request = ChatRequest.from_prompt(prompt, temperature=0.0, max_tokens=max_tokens)
        plain.complete_sync(request.model_copy(update={"max_tokens": 1}))  # cache the prompt
        text_off, off, cpu_off = timed(plain, request)
        text_on, on, cpu_on = timed(fast, request)
        stats = fast.stats().recent[-1]
        drafted += stats.drafted_tokens
        accepted += stats.accepted_tokens
        generated += stats.decode_tokens
        seconds[group][0] += off
        seconds[group][1] += on
        cpu[group][0] += cpu_off
        cpu[group][1] += cpu_on
        identical &= text_on == text_off
        if verbose:
            print(
                f"{kv_type} {name}: off {off:.2f}s on {on:.2f}s cpu {cpu_off:.2f}/{cpu_on:.2f}s "
                f"drafted={stats.drafted_tokens} "
                f"accepted={stats.accepted_tokens} of {stats.decode_tokens} "
                f"same={text_on == text_off}"
            )
    return {
        "speedup_copy": round(seconds["copy"][0] / seconds["copy"][1], 3),
        "speedup_free": round(seconds["free"][0] / seconds["free"][1], 3),
        "cpu_speedup_copy": round(cpu["copy"][0] / cpu["copy"][1], 3),
        "cpu_speedup_free": round(cpu["free"][0] / cpu["free"][1], 3),
        "identical": identical,
        "acceptance": round(accepted / drafted, 3) if drafted else 0.0,
        "accepted_share": round(accepted / generated, 3) if generated else 0.0,
        "seconds": {k: [round(v, 2) for v in pair] for k, pair in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--max-tokens", type=int, default=120)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    runs = {}
    for kv_type in ("f16", "q8_0"):
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
            runs[kv_type] = pool.submit(measure, kv_type, args.max_tokens, args.verbose).result()
    result = {"benchmark": "speculative", **runs["f16"], "kv_q8_0": runs["q8_0"]}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
