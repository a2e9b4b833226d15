"""Two local models in one process: decode rate of each alone, then in turn with the other.

The second GGUF is the embedded SmolLM2-135M file loaded again under other
engine options (``n_seq_max=8``, ``n_ctx=2048``): plait keys models by file and
options, so it is a distinct model with its own weights, context and engine,
as a second model file would be. No other GGUF ships with the project.

Workload: a routing workflow's steps, one greedy request at a time, A and B
alternating (``together``), against the same requests on A only and B only
(``alone``). Each side reports the median decode tokens/s over its requests.
``together_over_alone`` per model is the goal (>= 0.85); ``identical`` says
whether each request's greedy text is the same alone and together. Run it
with another plait on ``PYTHONPATH`` for the code before the compute lane.

With ``--json`` one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics

from plait import ChatRequest
from plait.backends import LocalBackend

PROMPTS = [
    "Write a short paragraph about rivers and how they shape valleys.",
    "Explain in a few sentences why the sky looks blue at noon.",
    "Describe a small village market on a Saturday morning.",
]


def _decode_rate(backend: LocalBackend, prompt: str, max_tokens: int) -> tuple[float, str]:
    request = ChatRequest.from_prompt(prompt, max_tokens=max_tokens, temperature=0.0)
    completion = backend.complete_sync(request)
    timings = completion.timings
    assert timings is not None and timings.decode_s
    return (completion.usage.completion_tokens - 1) / timings.decode_s, completion.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    models = {
        "A": LocalBackend(n_ctx=4096, n_seq_max=16, prefix_cache=False),
        "B": LocalBackend(n_ctx=2048, n_seq_max=8, prefix_cache=False),
    }
    work = [p for _ in range(args.rounds) for p in PROMPTS]
    alone: dict[str, list[float]] = {}
    texts: dict[str, list[str]] = {}
    for name in ("A", "B"):  # each alone; B is not loaded while A runs
        runs = [_decode_rate(models[name], p, args.max_tokens) for p in work]
        alone[name] = [r for r, _ in runs]
        texts[name] = [t for _, t in runs]
    together: dict[str, list[float]] = {"A": [], "B": []}
    same = {"A": True, "B": True}
    for i, prompt in enumerate(work):
        for name in ("A", "B"):
            rate, text = _decode_rate(models[name], prompt, args.max_tokens)
            together[name].append(rate)
            same[name] = same[name] and text == texts[name][i]
    result: dict[str, object] = {"second_model": "same GGUF, other engine options"}
    for name in ("A", "B"):
        a, t = statistics.median(alone[name]), statistics.median(together[name])
        result[name] = {
            "alone_tok_s": round(a, 1),
            "together_tok_s": round(t, 1),
            "together_over_alone": round(t / a, 3),
            "identical": same[name],
        }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
