"""Raw llama.cpp helpers for the benchmarks' ``engine_limit``: no plait code on the hot path."""

from __future__ import annotations

import time
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaContext


class RawContext:
    """One llama.cpp context with the same settings the plait engine uses."""

    def __init__(self, llama: Any, n_ctx: int, n_seq: int, n_batch: int = 512) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = n_seq
        params.kv_unified = True
        params.no_perf = True
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self.n_batch = n_batch
        self.ctx = LlamaContext(model=llama._model, params=params, verbose=False)
        self.mem = llama_cpp.llama_get_memory(self.ctx.ctx)
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, n_seq)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama._model.vocab)

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self.mem, True)

    def decode(self, rows: list[tuple[int, int, list[int]]]) -> list[int]:
        """Evaluate ``(seq, pos0, tokens)`` rows in one batch; return each row's argmax."""
        b = self.batch
        i = 0
        outs = []
        for seq, pos0, tokens in rows:
            for k, t in enumerate(tokens):
                b.token[i], b.pos[i], b.n_seq_id[i] = t, pos0 + k, 1
                b.seq_id[i][0] = seq
                b.logits[i] = k == len(tokens) - 1
                i += 1
            outs.append(i - 1)
        b.n_tokens = i
        if llama_cpp.llama_decode(self.ctx.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
        picks = []
        for idx in outs:
            ptr = llama_cpp.llama_get_logits_ith(self.ctx.ctx, idx)
            picks.append(int(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax()))
        return picks

    def prefill(self, seq: int, tokens: list[int], pos0: int = 0) -> int:
        """Prefill ``tokens`` into ``seq`` in ``n_batch`` chunks; return the next token."""
        nxt = -1
        for start in range(0, len(tokens), self.n_batch):
            nxt = self.decode([(seq, pos0 + start, tokens[start : start + self.n_batch])])[0]
        return nxt

    def prefill_many(self, rows: list[tuple[int, int, list[int]]]) -> list[int]:
        """Prefill several sequences, packing them into shared batches."""
        nexts = [-1] * len(rows)
        todo = [[i, seq, pos, toks] for i, (seq, pos, toks) in enumerate(rows)]
        while todo:
            batch, owners, room = [], [], self.n_batch
            for item in todo:
                if room <= 0:
                    break
                i, seq, pos, toks = item
                chunk = toks[:room]
                batch.append((seq, pos, chunk))
                owners.append((item, len(chunk) == len(toks)))
                room -= len(chunk)
            picks = self.decode(batch)
            for (item, last), pick, (_, _, chunk) in zip(owners, picks, batch, strict=True):
                item[2] += len(chunk)
                item[3] = item[3][len(chunk) :]
                if last:
                    nexts[item[0]] = pick
            todo = [item for item in todo if item[3]]
        return nexts

    def decode_together(
        self, seqs: list[int], pos: list[int], nexts: list[int], n: list[int]
    ) -> None:
        """Decode ``n[i]`` tokens for each sequence, all in shared batches."""
        pos, nexts, left = list(pos), list(nexts), list(n)
        while any(left):
            live = [i for i in range(len(seqs)) if left[i] > 0]
            picks = self.decode([(seqs[i], pos[i], [nexts[i]]) for i in live])
            for i, p in zip(live, picks, strict=True):
                pos[i] += 1
                nexts[i] = p
                left[i] -= 1


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
