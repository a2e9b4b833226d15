"""The local engine: one llama.cpp context, many sequences, continuous batching.

One thread owns the context. Requests from any thread or event loop are
submitted as :class:`Job` objects; each loop iteration admits new jobs (forking
the longest cached prefix into the job's own sequence), then packs one decode
token of every generating job and prefill chunks of the others into a single
``llama_decode`` batch, samples every sequence that produced logits, and hands
each token to its job's callback. No job waits for another to finish.

Jobs that arrive together and share a prefix that nobody has evaluated yet
prefill it once: the later job waits until the earlier one has evaluated the
shared part, then forks it (``llama_memory_seq_cp`` on a unified KV cache makes
the forked sequence point at the same cells, so nothing is copied).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plait.errors import BackendError

from ._jobs import EngineOptions, Job, Outcome
from ._prefix_index import Entry, PrefixIndex, common_prefix
from ._sampling import SamplerChain
from ._stats import EngineStats, RequestStats, StatsRecorder

__all__ = ["Engine", "EngineOptions", "Job", "Outcome"]


@dataclass(eq=False)
class _Active:
    job: Job
    entry: Entry
    sampler: SamplerChain | None = None
    wait_on: _Active | None = None  # fork from this job once it has evaluated wait_len tokens
    wait_len: int = 0
    reused: int = 0
    prefilled: int = 0
    decoded: int = 0
    generated: int = 0
    last_token: int = -1
    decoding: bool = False
    done: bool = False
    started_at: float | None = None

    @property
    def n_past(self) -> int:
        return len(self.entry.tokens)


class Engine:
    """Serves every request to one model through one llama.cpp context.

    Construction has no side effects; the context and thread start on the first
    :meth:`submit`.
    """

    def __init__(self, llama: Any, options: EngineOptions) -> None:
        self._llama = llama
        self.options = options
        self._cond = threading.Condition()
        self._pending: deque[Job] = deque()
        self._commands: deque[Callable[[], None]] = deque()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._broken: BackendError | None = None
        self._stats = StatsRecorder()
        self._index = PrefixIndex(options.n_seq_max)
        self._active: list[_Active] = []
        self._ctx: Any = None
        self._batch: Any = None

    # -- any thread ----------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue a job; its callbacks run on the engine thread."""
        with self._cond:
            if self._closing:
                raise self._broken or BackendError("the local engine was closed")
            self._start()
            self._pending.append(job)
            self._cond.notify()

    def call(self, command: Callable[[], Any]) -> Any:
        """Run ``command`` on the engine thread between batches; return its result."""
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            try:
                box.append((True, command()))
            except BaseException as e:  # re-raised on the calling thread
                box.append((False, e))
            finally:
                done.set()

        with self._cond:
            self._start()
            self._commands.append(run)
            self._cond.notify()
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def stats(self) -> EngineStats:
        return self._stats.snapshot()

    def close(self) -> None:
        """Stop the engine thread (running jobs are cancelled) and free the context."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    # -- engine thread: commands ---------------------------------------------

    def clear_cache(self) -> int:
        """Drop every idle, unpinned cached sequence; return how many."""
        gone = self._index.clear()
        for entry in gone:
            self._seq_rm(entry.seq_id, 0)
        return len(gone)

    def unpin(self, pin_id: int) -> bool:
        return self._index.unpin(pin_id)

    # -- engine thread: the loop ---------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="plait-engine", daemon=True)
            self._thread.start()

    def _open(self) -> None:
        import llama_cpp
        from llama_cpp._internals import LlamaContext

        o = self.options
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = o.n_ctx
        params.n_batch = params.n_ubatch = o.n_batch
        params.n_seq_max = o.n_seq_max
        params.kv_unified = True  # forked sequences share cells only in a unified cache
        params.no_perf = True
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
            self._ctx = LlamaContext(model=self._llama._model, params=params, verbose=False)
        except ValueError as e:
            raise BackendError(f"llama.cpp could not create the engine context ({e})") from e
        self._mem = llama_cpp.llama_get_memory(self._ctx.ctx)
        self._batch = llama_cpp.llama_batch_init(o.n_batch, 0, o.n_seq_max)
        self._vocab = self._llama._model.vocab
        self._lib = llama_cpp

    def _run(self) -> None:
        try:
            self._open()
        except BackendError as e:
            self._broken = e
            self._fail_everything(e)
            return
        try:
            while True:
                with self._cond:
                    while not (self._pending or self._commands or self._active or self._closing):
                        self._cond.wait()
                    if self._closing:
                        break
                    commands = list(self._commands)
                    self._commands.clear()
                    pending = list(self._pending)
                    self._pending.clear()
                for command in commands:
                    command()
                self._index.expire(time.monotonic())
                waiting = [job for job in pending if not self._admit(job)]
                if waiting:  # every sequence busy: retry after this step
                    with self._cond:
                        self._pending.extendleft(reversed(waiting))
                self._step()
        finally:
            for active in list(self._active):
                self._finish(active, Outcome(finish="cancelled"))
            self._fail_everything(BackendError("the local engine was closed"))
            self._lib.llama_batch_free(self._batch)
            self._ctx.close()

    def _fail_everything(self, error: BaseException) -> None:
        with self._cond:
            self._closing = True
            pending = list(self._pending)
            self._pending.clear()
            commands = list(self._commands)
            self._commands.clear()
        for job in pending:
            job.on_done(Outcome(error=error))
        for command in commands:
            command()

    def _seq_rm(self, seq_id: int, p0: int) -> None:
        self._lib.llama_memory_seq_rm(self._mem, seq_id, p0, -1)

    def _admit(self, job: Job) -> bool:
        """Give a job its sequence, forking the longest cached prefix; False: no room."""
        now = time.monotonic()
        limit = len(job.prompt) - 1  # the last prompt token is evaluated for its logits
        source, reuse = self._index.longest(job.prompt) if job.reuse else (None, 0)
        reuse = min(reuse, limit)
        wait_on, wait_len = None, 0
        if job.reuse:
            for other in self._active:
                if other.done or other.decoding or other.wait_on is not None:
                    continue
                shared = min(common_prefix(other.job.prompt, job.prompt), limit)
                if shared > max(reuse, other.n_past, wait_len):
                    wait_on, wait_len = other, shared
        entry: Entry | None
        evicted: Entry | None
        if (
            source is not None
            and wait_on is None
            and source.users == 0
            and not source.pinned(now)
            and reuse >= source.n_prompt - 1
        ):
            # The same prompt again (a retry, the next sample): continue in the
            # source's own sequence. Only its generated tail is lost, and the new
            # tokens take the freed cells, so the cache layout, and with it
            # llama.cpp's arithmetic, is the same as the first time.
            self._seq_rm(source.seq_id, reuse)
            del source.tokens[reuse:]
            entry, evicted, source = source, None, None
        else:
            entry, evicted = self._index.allocate(now, keep=source)
        if entry is None:
            return False
        if evicted is not None:
            if evicted is source and wait_on is None:
                self._seq_rm(entry.seq_id, reuse)  # take over the source in place
                entry.tokens = source.tokens[:reuse]
                source = None
            else:
                self._seq_rm(evicted.seq_id, 0)
                self._stats.eviction()
                if evicted is source:
                    source, reuse = None, 0
        active = _Active(job=job, entry=entry, reused=len(entry.tokens))
        entry.users = 1
        entry.n_prompt = len(job.prompt)
        try:
            if job.max_tokens > 0:
                active.sampler = SamplerChain(self._vocab, job.sampling)
        except ValueError as e:
            self._finish(active, Outcome(error=BackendError(str(e))), listed=False)
            return True
        if wait_on is not None:
            active.wait_on, active.wait_len = wait_on, wait_len
            wait_on.entry.users += 1
        elif source is not None and reuse > 0:
            self._fork(active, source, reuse)
        self._active.append(active)
        return True

    def _fork(self, active: _Active, source: Entry, n: int) -> None:
        self._lib.llama_memory_seq_cp(self._mem, source.seq_id, active.entry.seq_id, 0, n)
        active.entry.tokens = source.tokens[:n]
        active.reused = n
        source.last_used = time.monotonic()

    def _step(self) -> None:
        rows: list[tuple[_Active, list[int], bool]] = []
        budget = self.options.n_batch
        for active in list(self._active):
            if active.job.cancelled.is_set():
                self._finish(active, Outcome(finish="cancelled"))
        for active in self._active:
            if active.decoding:
                rows.append((active, [active.last_token], True))
                budget -= 1
        for active in self._active:
            if active.decoding or budget <= 0:
                continue
            source = active.wait_on
            if source is not None:
                if source.n_past < active.wait_len and not source.done:
                    continue
                self._fork(active, source.entry, min(active.wait_len, source.n_past))
                source.entry.users -= 1
                active.wait_on = None
            prompt = active.job.prompt
            # The last prompt token is evaluated on its own, like a decode step:
            # llama.cpp's arithmetic differs slightly between a token inside a
            # multi-token chunk and a lone token, and a repeat of this prompt
            # (the same seed again) evaluates only that token.
            end = len(prompt) - 1 if active.n_past < len(prompt) - 1 else len(prompt)
            chunk = prompt[active.n_past : min(end, active.n_past + budget)]
            budget -= len(chunk)
            last = active.n_past + len(chunk) == len(prompt)
            rows.append((active, chunk, last))
        if rows:
            self._decode(rows)

    def _decode(self, rows: list[tuple[_Active, list[int], bool]]) -> None:
        batch = self._batch
        i = 0
        outputs: list[tuple[_Active, int]] = []
        for active, tokens, wants_logits in rows:
            if active.started_at is None:
                active.started_at = time.perf_counter()
            seq_id, pos = active.entry.seq_id, active.n_past
            for k, token in enumerate(tokens):
                batch.token[i] = token
                batch.pos[i] = pos + k
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq_id
                batch.logits[i] = wants_logits and k == len(tokens) - 1
                i += 1
            if wants_logits:
                outputs.append((active, i - 1))
        batch.n_tokens = i
        rc = self._lib.llama_decode(self._ctx.ctx, batch)
        if rc == 1:  # no free KV cells: evict a cached prefix, or fail the newest job
            self._make_room(rows)
            return
        if rc != 0:
            error = BackendError(f"llama_decode failed with status {rc}")
            for active, _, _ in rows:
                self._finish(active, Outcome(error=error))
            return
        self._stats.batch(i, len(rows))
        for active, tokens, _ in rows:
            active.entry.tokens.extend(tokens)
            if active.decoding:
                active.decoded += 1
            else:
                active.prefilled += len(tokens)
        for active, index in outputs:
            self._advance(active, index)
        for active, _, _ in rows:  # prefill finished and nothing to generate (a pin)
            if (
                not active.done
                and active.sampler is None
                and active.n_past == len(active.job.prompt)
            ):
                self._finish(active, Outcome(finish="length"))

    def _advance(self, active: _Active, index: int) -> None:
        job = active.job
        if active.sampler is None:
            return
        if job.on_logits is not None:
            row = self._lib.llama_get_logits_ith(self._ctx.ctx, index)
            job.on_logits(row[: self._lib.llama_vocab_n_tokens(self._vocab)])
        token = active.sampler.sample(self._ctx.ctx, index)
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            self._finish(active, Outcome(finish="eog"))
            return
        active.generated += 1
        try:
            keep_going = job.on_token(token)
        except Exception as e:  # a broken consumer ends its own job only
            self._finish(active, Outcome(error=e))
            return
        if not keep_going:
            self._finish(active, Outcome(finish="stopped"))
        elif active.generated >= job.max_tokens:
            self._finish(active, Outcome(finish="length"))
        else:
            active.last_token = token
            active.decoding = True

    def _make_room(self, rows: list[tuple[_Active, list[int], bool]]) -> None:
        victim = self._index.victim(time.monotonic())
        if victim is not None:
            self._seq_rm(victim.seq_id, 0)
            self._index.evict(victim)
            self._stats.eviction()
            return
        newest = max((a for a, _, _ in rows), key=lambda a: a.job.submitted_at)
        running = len(self._active)
        error = BackendError(
            f"the local KV cache (n_ctx={self.options.n_ctx} tokens shared by {running} "
            "running requests) is full; raise n_ctx, lower max_tokens or run fewer "
            "requests at once"
        )
        self._finish(newest, Outcome(error=error))

    def _finish(self, active: _Active, outcome: Outcome, *, listed: bool = True) -> None:
        if active.done:
            return
        active.done = True
        if listed:
            self._active.remove(active)
        if active.wait_on is not None:
            active.wait_on.entry.users -= 1
            active.wait_on = None
        if active.sampler is not None:
            active.sampler.close()
        entry = active.entry
        entry.users -= 1
        entry.last_used = time.monotonic()
        if outcome.error is not None:
            self._seq_rm(entry.seq_id, len(entry.tokens))  # drop cells of a failed batch
        if not entry.tokens and not entry.users:
            self._index.evict(entry)
        if outcome.error is None and active.job.pin_ttl_s is not None:
            ttl = None if active.job.pin_ttl_s == float("inf") else active.job.pin_ttl_s
            outcome.pin_id = self._index.pin(entry, ttl, time.monotonic())
        started = active.started_at or time.perf_counter()
        outcome.stats = RequestStats(
            prompt_tokens=len(active.job.prompt),
            reused_tokens=active.reused,
            prefilled_tokens=active.prefilled,
            decode_tokens=active.generated,
            queued_s=started - active.job.submitted_at,
        )
        self._stats.finished(outcome.stats)
        try:
            active.job.on_done(outcome)
        finally:
            with self._cond:
                self._cond.notify()
