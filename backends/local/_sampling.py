"""Per-sequence llama.cpp sampler chains (temperature, top-k/p, seed, grammar)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["SamplerChain", "SamplingParams"]


@dataclass(frozen=True)
class SamplingParams:
    """How one request picks its tokens.

    Attributes:
        temperature: 0 means greedy (argmax).
        top_k: keep the k most likely tokens (0: all).
        top_p: nucleus sampling threshold.
        seed: random seed (``None``: a fresh random one).
        grammar: GBNF text constraining the output (``None``: free text).
    """

    temperature: float = 0.2
    top_k: int = 40
    top_p: float = 0.95
    seed: int | None = None
    grammar: str | None = None


class SamplerChain:
    """A llama.cpp sampler chain owned by one sequence; call :meth:`close` when done.

    Each request gets its own chain so grammar state and random state never mix
    between requests decoded in the same batch.
    """

    def __init__(self, vocab: Any, params: SamplingParams) -> None:
        import llama_cpp

        self._lib = llama_cpp
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if params.grammar is not None:
            # First in the chain: later samplers must only see grammatical tokens.
            grammar = llama_cpp.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
            if not grammar:
                llama_cpp.llama_sampler_free(chain)
                raise ValueError("llama.cpp rejected the decoding grammar")
            llama_cpp.llama_sampler_chain_add(chain, grammar)
        if params.temperature <= 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            if params.top_k > 0:
                llama_cpp.llama_sampler_chain_add(
                    chain, llama_cpp.llama_sampler_init_top_k(params.top_k)
                )
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1)
            )
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_temp(params.temperature)
            )
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF)
            )
        self._chain: Any = chain

    def sample(self, ctx: Any, output_index: int) -> int:
        """Pick the next token from the logits of batch row ``output_index``."""
        # llama_sampler_sample also accepts the token into the chain (grammar state).
        return int(self._lib.llama_sampler_sample(self._chain, ctx, output_index))

    def close(self) -> None:
        if self._chain is not None:
            self._lib.llama_sampler_free(self._chain)
            self._chain = None
