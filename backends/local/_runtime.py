"""The llama.cpp calls the local engine makes, behind one small interface.

The engine never imports ``llama_cpp``: it asks a :class:`Runtime` to decode a
batch, read logits, sample, and move sequences in the KV cache. :func:`open_llama`
opens the real one on a loaded model; ``plait.backends.local.testing.FakeLlama``
opens a scripted one, so the engine's loop, admission, forking, eviction and
failure paths run without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from plait.errors import BackendError

from ._jobs import EngineOptions
from ._sampling import SamplerChain, SamplingParams

__all__ = ["BatchRow", "LlamaRuntime", "Runtime", "Sampler", "open_llama"]


class BatchRow(NamedTuple):
    """Tokens of one sequence in a decode batch, at positions ``pos, pos + 1, ...``.

    ``logits``: for how many of the last tokens logits are wanted (0 or ``False``:
    none; 1 or ``True``: the last token's, whose batch index is the sum of the
    lengths of the rows before it, plus its own length, minus one; more: a
    speculative draft's, one per drafted token plus the token before them).
    """

    seq_id: int
    pos: int
    tokens: Sequence[int]
    logits: int


class Sampler(Protocol):
    """One sequence's token picker; :meth:`close` frees it."""

    def sample(self, index: int) -> int:
        """Pick a token from the logits of batch index ``index`` (and accept it)."""
        ...

    def close(self) -> None: ...


class Runtime(Protocol):
    """One llama.cpp context with ``n_seq_max`` sequences over a unified KV cache.

    Every method runs on the engine thread. Methods raise only when the runtime
    itself is broken; the engine then fails every request it holds.
    """

    n_vocab: int

    def decode(self, rows: Sequence[BatchRow]) -> int:
        """Evaluate one batch: 0 done, 1 no free KV cells (nothing was evaluated), else failed."""
        ...

    def logits(self, index: int) -> list[float]:
        """A copy of the logits of batch index ``index`` of the last decode."""
        ...

    def mask(self, index: int, allowed: bytes) -> None:
        """Forbid, in the logits of batch index ``index``, every token not in ``allowed``.

        ``allowed`` is a bitmask: bit ``t % 8`` of byte ``t // 8`` set means token
        ``t`` may be sampled. Samplers then pick among the allowed tokens only.
        """
        ...

    def sampler(self, params: SamplingParams) -> Sampler:
        """A new sampler; raises ``ValueError`` when ``params`` cannot be honoured."""
        ...

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends generation."""
        ...

    def seq_rm(self, seq_id: int, p0: int) -> None:
        """Drop the cells of ``seq_id`` at positions ``p0`` and after."""
        ...

    def seq_cp(self, src: int, dst: int, n: int) -> None:
        """Make ``dst`` share the cells of ``src`` at positions ``0..n-1`` (no copy)."""
        ...

    def close(self) -> None:
        """Free the context and the batch."""
        ...


class _BoundSampler:
    def __init__(self, chain: SamplerChain, ctx: Any) -> None:
        self._chain = chain
        self._ctx = ctx

    def sample(self, index: int) -> int:
        return self._chain.sample(self._ctx, index)

    def close(self) -> None:
        self._chain.close()


class LlamaRuntime:
    """The real runtime: a llama.cpp context and batch; made by :func:`open_llama`."""

    def __init__(self, lib: Any, ctx: Any, batch: Any, vocab: Any) -> None:
        self._lib = lib
        self._ctx = ctx
        self._mem = lib.llama_get_memory(ctx.ctx)
        self._batch = batch
        self._vocab = vocab
        self.n_vocab = int(lib.llama_vocab_n_tokens(vocab))

    def decode(self, rows: Sequence[BatchRow]) -> int:
        batch = self._batch
        i = 0
        for seq_id, pos, tokens, wants_logits in rows:
            first = len(tokens) - int(wants_logits)
            for k, token in enumerate(tokens):
                batch.token[i] = token
                batch.pos[i] = pos + k
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq_id
                batch.logits[i] = k >= first
                i += 1
        batch.n_tokens = i
        return int(self._lib.llama_decode(self._ctx.ctx, batch))

    def logits(self, index: int) -> list[float]:
        return self._lib.llama_get_logits_ith(self._ctx.ctx, index)[: self.n_vocab]

    def mask(self, index: int, allowed: bytes) -> None:
        # The sampler chain reads the context's own logits buffer: mask it in place.
        row = np.ctypeslib.as_array(
            self._lib.llama_get_logits_ith(self._ctx.ctx, index), shape=(self.n_vocab,)
        )
        bits = np.unpackbits(np.frombuffer(allowed, np.uint8), bitorder="little")
        np.putmask(row, bits[: self.n_vocab] == 0, -np.inf)

    def sampler(self, params: SamplingParams) -> Sampler:
        return _BoundSampler(SamplerChain(self._vocab, params), self._ctx.ctx)

    def is_eog(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def seq_rm(self, seq_id: int, p0: int) -> None:
        self._lib.llama_memory_seq_rm(self._mem, seq_id, p0, -1)

    def seq_cp(self, src: int, dst: int, n: int) -> None:
        self._lib.llama_memory_seq_cp(self._mem, src, dst, 0, n)

    def close(self) -> None:
        self._lib.llama_batch_free(self._batch)
        self._ctx.close()


def open_llama(llama: Any, options: EngineOptions) -> LlamaRuntime:
    """Create the engine's context on the weights of ``llama`` (a ``llama_cpp.Llama``).

    Raises:
        BackendError: llama.cpp could not create the context.
    """
    import llama_cpp
    from llama_cpp._internals import LlamaContext

    o = options
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = o.n_ctx
    params.n_batch = params.n_ubatch = o.n_batch
    params.n_seq_max = o.n_seq_max
    params.kv_unified = True  # forked sequences share cells only in a unified cache
    params.no_perf = True
    if hasattr(params, "n_outputs_max_per_seq"):
        # Newer llama.cpp caps logits rows per sequence at one by default; a
        # speculative draft is verified with one row per drafted token.
        params.n_outputs_max_per_seq = 0
    if o.n_threads is not None:
        params.n_threads = params.n_threads_batch = o.n_threads
    if o.type_k is not None:
        params.type_k = o.type_k
    if o.type_v is not None:
        params.type_v = o.type_v
    # Flash attention skips masked cells, so a sequence's result does not depend
    # on where its cells sit in the shared cache or what else is cached: sharing
    # on and off give the same logits. It is also what quantized V needs.
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    try:
        ctx = LlamaContext(model=llama._model, params=params, verbose=False)
    except ValueError as e:
        raise BackendError(f"llama.cpp could not create the engine context ({e})") from e
    batch = llama_cpp.llama_batch_init(o.n_batch, 0, o.n_seq_max)
    return LlamaRuntime(llama_cpp, ctx, batch, llama._model.vocab)
