"""Does llama.cpp give a position the same logits in a one-token batch as in a k-token one?

Speculative decoding verifies a draft in one batch row of k tokens; plain
decoding evaluates one token per step. Greedy outputs are the same both ways
only where the two give the same logits. This measures llama.cpp itself on the
embedded model (flash attention on, as plait's engine runs it): a greedy
continuation is decoded one token at a time, then the same tokens are evaluated
k at a time, and the logits of each position are compared. It runs with a
short context and behind a long one (many cached tokens before the prompt), on
one thread and on every CPU this process may use, and once more behind the long
context with the KV cache stored as q8_0 (llama.cpp splits the keys across
threads only for one-token batches over an f16 or f32 cache of 512 cells or
more).

With ``--json`` one JSON object: per thread count and context,
``max_abs_logit_diff`` (largest difference of one logit between the two ways)
and ``argmax_flips`` (positions where the greedy pick differs).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from plait.backends import default_model_path
from plait.backends.local._loaded import plain_weight_buffers
from plait.settings import available_cpus

PROMPT = (
    "<|im_start|>user\nWrite a short story about a robot who learns to paint.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
FILLER = "The river flows to the sea. "  # about 7 tokens


def compare(llm, prompt: list[int], steps: int, k: int) -> dict[str, object]:
    llm.reset()
    llm.eval(prompt)
    one_at_a_time, tokens = [], []
    for _ in range(steps):
        row = np.array(llm.scores[llm.n_tokens - 1])
        one_at_a_time.append(row)
        tokens.append(int(row.argmax()))
        llm.eval([tokens[-1]])
    llm.reset()
    llm.eval(prompt)
    batched = [np.array(llm.scores[llm.n_tokens - 1])]
    for i in range(0, steps - 1, k):
        chunk = tokens[i : min(i + k, steps - 1)]
        start = llm.n_tokens
        llm.eval(chunk)
        batched += [np.array(llm.scores[start + j]) for j in range(len(chunk))]
    diffs = [float(np.abs(a - b).max()) for a, b in zip(one_at_a_time, batched, strict=True)]
    flips = [
        i
        for i, (a, b) in enumerate(zip(one_at_a_time, batched, strict=True))
        if a.argmax() != b.argmax()
    ]
    return {
        "context_tokens": len(prompt),
        "max_abs_logit_diff": round(max(diffs), 4),
        "argmax_flips": len(flips),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--k", type=int, default=5, help="tokens per batch the second way")
    parser.add_argument("--steps", type=int, default=100, help="greedy tokens compared")
    parser.add_argument("--long", type=int, default=150, help="filler sentences before the prompt")
    args = parser.parse_args()
    import llama_cpp

    result: dict[str, object] = {"benchmark": "batch_invariance", "k": args.k}
    long_text = FILLER * args.long + PROMPT
    runs = [
        (threads, "f16", name)
        for threads in sorted({1, available_cpus()})
        for name in ("short", "long")
    ]
    runs.append((available_cpus(), "q8_0", "long"))
    for threads, kv_type, name in runs:
        kv = llama_cpp.GGML_TYPE_F16 if kv_type == "f16" else llama_cpp.GGML_TYPE_Q8_0
        with plain_weight_buffers():
            llm = llama_cpp.Llama(
                str(default_model_path()),
                n_ctx=4096,
                logits_all=True,
                flash_attn=True,
                n_threads=threads,
                type_k=kv,
                type_v=kv,
                verbose=False,
            )
        tokens = llm.tokenize((PROMPT if name == "short" else long_text).encode(), special=True)
        key = f"threads_{threads}_{name}" + ("" if kv_type == "f16" else f"_kv_{kv_type}")
        result[key] = compare(llm, tokens, args.steps, args.k)
        llm.close()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
