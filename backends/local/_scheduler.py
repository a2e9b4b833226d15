"""Scheduling one step of the local engine: admission, prefix forks, batches, eviction.

Runs on the engine thread only. Each step admits new jobs (forking the longest
cached prefix into the job's own sequence), then packs the next tokens of every
generating job (its last sampled token, plus the tokens its grammar forced after
it) and prefill chunks of the others into a single decode batch; the
:class:`~._picking.TokenPicker` then turns the batch's logits into each job's
next tokens. No job waits for another to finish. When the prompts waiting to
be prefilled do not fit in one batch, the highest effective priority goes
first (``_admission.effective_priority``: the plan's critical path, aged).

A job with a grammar (:class:`~._guidance.Constraint`) has its logits masked
before sampling; the tokens the grammar then forces are handed out at once and
evaluated in the next batch together with the sampled token, as one multi-token
row (jump-forward), so they cost a share of one decode step instead of a step each.

Jobs that arrive together and share a prefix that nobody has evaluated yet
prefill it once: the later job waits until the earlier one has evaluated the
shared part, then forks it (``llama_memory_seq_cp`` on a unified KV cache makes
the forked sequence point at the same cells, so nothing is copied).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from plait.errors import BackendError

from ._active import Active
from ._admission import effective_priority
from ._jobs import EngineOptions, Job, JobEnd
from ._picking import TokenPicker
from ._prefix_index import Entry, PrefixIndex, common_prefix
from ._runtime import BatchRow, Runtime
from ._stats import StatsRecorder
from ._suffix import Drafter, OutputIndex

__all__ = ["Scheduler"]


class Scheduler:
    """The running jobs of one engine and the sequences of its KV cache.

    Args:
        runtime: the opened llama.cpp context (or a fake).
        options: the context's options.
        stats: where finished jobs, batches and evictions are counted.
    """

    def __init__(self, runtime: Runtime, options: EngineOptions, stats: StatsRecorder) -> None:
        self._runtime = runtime
        self.options = options
        self._stats = stats
        self._index = PrefixIndex(options.n_seq_max)
        self._active: list[Active] = []
        self._outputs = OutputIndex()  # earlier outputs, for speculative drafts
        self._picker = TokenPicker(runtime, self._finish)

    @property
    def busy(self) -> bool:
        """Whether any job is running."""
        return bool(self._active)

    def clear_cache(self) -> int:
        """Drop every idle, unpinned cached sequence; return how many."""
        gone = self._index.clear()
        for entry in gone:
            self._seq_rm(entry.seq_id, 0)
        return len(gone)

    def unpin(self, pin_id: int) -> bool:
        return self._index.unpin(pin_id)

    def expire(self) -> None:
        self._index.expire(time.monotonic())

    def abort(self, error: Callable[[], BackendError]) -> list[BaseException]:
        """Fail every running job with a fresh ``error()``, leaving the cache be.

        Every job is told even when another job's ``on_done`` raises; those
        errors are returned for the caller to raise.
        """
        missed: list[BaseException] = []
        for active in list(self._active):
            try:
                self._finish(active, JobEnd(error=error()), teardown=True)
            except BaseException as e:  # kept, not swallowed: the engine raises it after
                missed.append(e)
        return missed

    def _seq_rm(self, seq_id: int, p0: int) -> None:
        self._runtime.seq_rm(seq_id, p0)

    def admit(self, job: Job) -> bool:
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
        active = Active(job=job, entry=entry, reused=len(entry.tokens))
        # Under an llguidance constraint drafts are cut to what the grammar allows
        # and verified under its masks; llama.cpp's own grammar sampler is not.
        if job.speculate > 0 and job.sampling.grammar is None and job.max_tokens > 0:
            active.history = list(job.prompt)
            active.drafter = Drafter(active.history, self._outputs, job.speculate)
        entry.users = 1
        entry.n_prompt = len(job.prompt)
        try:
            if job.max_tokens > 0:
                active.sampler = self._runtime.sampler(job.sampling)
        except ValueError as e:  # this job's sampling cannot be honoured (a bad grammar)
            error = BackendError(str(e))
            error.__cause__ = e
            self._finish(active, JobEnd(error=error), listed=False)
            return True
        if wait_on is not None:
            active.wait_on, active.wait_len = wait_on, wait_len
            wait_on.entry.users += 1
        elif source is not None and reuse > 0:
            self._fork(active, source, reuse)
        self._active.append(active)
        return True

    def _fork(self, active: Active, source: Entry, n: int) -> None:
        self._runtime.seq_cp(source.seq_id, active.entry.seq_id, n)
        active.entry.tokens = source.tokens[:n]
        active.reused = n
        source.last_used = time.monotonic()

    def step(self) -> None:
        """Drop cancelled jobs, then decode one batch and hand out its tokens."""
        rows: list[tuple[Active, list[int], int]] = []
        budget = self.options.n_batch
        for active in list(self._active):
            if active.job.cancelled.is_set():
                self._finish(active, JobEnd(finish="cancelled"))
        for active in list(self._active):
            if (
                not active.decoding
                and active.wait_on is None
                and active.n_past >= len(active.job.prompt) - 1
            ):
                self._start_decoding(active)
        decoding = [a for a in self._active if a.decoding]
        for k, active in enumerate(decoding):
            # Every later decoding row keeps at least one slot (n_seq_max <= n_batch).
            room = budget - (len(decoding) - k - 1)
            rows.append(self._decode_row(active, room))
            budget -= len(rows[-1][1])
        # Prefill in priority order: what does not fit waits for the next batch.
        now = time.perf_counter()
        prefilling = [a for a in self._active if not a.decoding]
        prefilling.sort(key=lambda a: -effective_priority(a.job, now))
        for active in prefilling:
            if budget <= 0:
                break
            source = active.wait_on
            if source is not None:
                if source.n_past < active.wait_len and not source.done:
                    continue
                self._fork(active, source.entry, min(active.wait_len, source.n_past))
                source.entry.users -= 1
                active.wait_on = None
            prompt = active.job.prompt
            if active.n_past >= len(prompt) - 1:
                self._start_decoding(active)
                if not active.done:
                    rows.append(self._decode_row(active, budget))
                    budget -= len(rows[-1][1])
                continue
            # The last prompt token is evaluated apart from the rest, as the first
            # row of the decode stage: llama.cpp's arithmetic differs slightly
            # between a token inside a multi-token chunk and a lone token, and a
            # repeat of this prompt (the same seed again) evaluates only that token.
            chunk = prompt[active.n_past : min(len(prompt) - 1, active.n_past + budget)]
            budget -= len(chunk)
            rows.append((active, chunk, False))
        if rows:
            self._decode(rows)

    def _start_decoding(self, active: Active) -> None:
        """Enter the decode stage: the last prompt token, then what the grammar forces."""
        active.decoding = True
        active.pending = [active.job.prompt[-1]]
        constraint = active.job.constraint
        if constraint is None or active.sampler is None:
            return
        self._picker.extend(active, constraint.forced())

    def _decode_row(self, active: Active, room: int) -> tuple[Active, list[int], int]:
        """The next tokens of a decoding job that fit in ``room`` (logits once all are in).

        A job that speculates adds a draft after its sampled token, with logits for
        each draft position, when its text so far suggests one and there is room.
        """
        chunk = active.pending[:room]
        if len(chunk) < len(active.pending) or active.sampler is None:
            return active, chunk, 0
        if active.drafter is not None and len(chunk) == 1:
            constraint = active.job.constraint
            left = active.job.max_tokens - active.generated
            if constraint is not None:
                left = constraint.draft_room(left)
            draft = active.drafter.propose(min(room - 1, left)) if left > 0 else []
            if draft and constraint is not None:
                del draft[constraint.valid_prefix(draft) :]
            if draft:
                active.draft = draft
                return active, chunk + draft, 1 + len(draft)
        return active, chunk, 1

    def _decode(self, rows: list[tuple[Active, list[int], int]]) -> None:
        batch: list[BatchRow] = []
        i = 0
        outputs: list[tuple[Active, int, int]] = []
        for active, tokens, wants_logits in rows:
            if active.started_at is None:
                active.started_at = time.perf_counter()
            batch.append(BatchRow(active.entry.seq_id, active.n_past, tokens, wants_logits))
            i += len(tokens)
            if wants_logits:
                outputs.append((active, i - wants_logits, wants_logits))
        rc = self._runtime.decode(batch)
        if rc == 1:  # no free KV cells: evict a cached prefix, or fail the newest job
            for active, _, _ in rows:
                active.draft = []
            self._make_room(rows)
            return
        if rc != 0:
            error = BackendError(f"llama_decode failed with status {rc}")
            for active, _, _ in rows:
                self._finish(active, JobEnd(error=error))
            return
        self._stats.batch(i, len(rows))
        for active, tokens, _ in rows:
            n_prompt = len(active.job.prompt)
            active.prefilled += max(0, min(n_prompt - active.n_past, len(tokens)))
            active.entry.tokens.extend(tokens)
            if active.decoding:
                del active.pending[: len(tokens)]
        for active, index, n in outputs:
            if n > 1:
                self._picker.verify(active, index)
            else:
                self._picker.advance(active, index)
        for active, _, _ in rows:  # prefill finished and nothing to generate (a pin)
            if (
                not active.done
                and active.sampler is None
                and active.n_past == len(active.job.prompt)
            ):
                self._finish(active, JobEnd(finish="length"))

    def _make_room(self, rows: list[tuple[Active, list[int], int]]) -> None:
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
        self._finish(newest, JobEnd(error=error))

    def _finish(
        self, active: Active, outcome: JobEnd, *, listed: bool = True, teardown: bool = False
    ) -> None:
        """End a job and tell it; ``teardown``: the engine is stopping, leave the cache be."""
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
        # In teardown the context goes with the engine: a broken one is not touched again.
        if outcome.error is not None and not teardown:
            self._seq_rm(entry.seq_id, len(entry.tokens))  # drop cells of a failed batch
        if not entry.tokens and not entry.users:
            self._index.evict(entry)
        if active.drafter is not None and outcome.error is None:
            self._outputs.add(active.history[len(active.job.prompt) :])
        if outcome.error is None and active.job.pin_ttl_s is not None:
            ttl = None if active.job.pin_ttl_s == float("inf") else active.job.pin_ttl_s
            outcome.pin_id = self._index.pin(entry, ttl, time.monotonic())
        outcome.stats = active.stats()
        self._stats.finished(outcome.stats)
        active.job.on_done(outcome)
