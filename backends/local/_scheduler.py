"""Scheduling one step of the local engine: admission, prefix forks, batches, eviction.

Runs on the engine thread only. Each step admits new jobs (forking the longest
cached prefix into the job's own sequence), then packs the next tokens of every
generating job (its last sampled token, plus the tokens its grammar forced after
it) and prefill chunks of the others into a single decode batch, samples every
sequence that produced logits, and hands each token to its job's callback. No
job waits for another to finish.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plait.errors import BackendError, is_control_flow

from ._jobs import EngineOptions, Job, JobEnd
from ._prefix_index import Entry, PrefixIndex, common_prefix
from ._runtime import BatchRow, Runtime, Sampler
from ._stats import RequestStats, StatsRecorder
from ._suffix import Drafter, OutputIndex

if TYPE_CHECKING:
    from ._guidance import Constraint

__all__ = ["Scheduler"]


@dataclass(eq=False)
class _Active:
    job: Job
    entry: Entry
    sampler: Sampler | None = None
    wait_on: _Active | None = None  # fork from this job once it has evaluated wait_len tokens
    wait_len: int = 0
    reused: int = 0
    prefilled: int = 0
    generated: int = 0
    forced: int = 0
    pending: list[int] = field(default_factory=list)  # tokens for the next batch
    draft: list[int] = field(default_factory=list)  # speculative tokens after ``pending``
    drafter: Drafter | None = None
    history: list[int] = field(default_factory=list)  # prompt and generated tokens
    decoding: bool = False
    done: bool = False
    started_at: float | None = None

    @property
    def n_past(self) -> int:
        return len(self.entry.tokens)


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
        self._active: list[_Active] = []
        self._outputs = OutputIndex()  # earlier outputs, for speculative drafts

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
        active = _Active(job=job, entry=entry, reused=len(entry.tokens))
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

    def _fork(self, active: _Active, source: Entry, n: int) -> None:
        self._runtime.seq_cp(source.seq_id, active.entry.seq_id, n)
        active.entry.tokens = source.tokens[:n]
        active.reused = n
        source.last_used = time.monotonic()

    def step(self) -> None:
        """Drop cancelled jobs, then decode one batch and hand out its tokens."""
        rows: list[tuple[_Active, list[int], int]] = []
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
        for active in list(self._active):
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

    def _start_decoding(self, active: _Active) -> None:
        """Enter the decode stage: the last prompt token, then what the grammar forces."""
        active.decoding = True
        active.pending = [active.job.prompt[-1]]
        constraint = active.job.constraint
        if constraint is None or active.sampler is None:
            return
        self._extend(active, constraint.forced())

    def _decode_row(self, active: _Active, room: int) -> tuple[_Active, list[int], int]:
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

    def _decode(self, rows: list[tuple[_Active, list[int], int]]) -> None:
        batch: list[BatchRow] = []
        i = 0
        outputs: list[tuple[_Active, int, int]] = []
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
                self._verify(active, index)
            else:
                self._advance(active, index)
        for active, _, _ in rows:  # prefill finished and nothing to generate (a pin)
            if (
                not active.done
                and active.sampler is None
                and active.n_past == len(active.job.prompt)
            ):
                self._finish(active, JobEnd(finish="length"))

    def _advance(self, active: _Active, index: int) -> None:
        job = active.job
        if active.sampler is None:
            return
        if job.on_logits is not None:
            row = self._runtime.logits(index)
            try:
                job.on_logits(row)
            except Exception as e:  # a broken consumer ends its own job only
                if is_control_flow(e):
                    raise
                self._finish(active, JobEnd(error=e))
                return
        constraint = job.constraint
        if constraint is not None:
            self._runtime.mask(index, constraint.mask())
        token = active.sampler.sample(index)
        if self._runtime.is_eog(token):
            self._finish(active, JobEnd(finish="eog"))
            return
        if constraint is not None:
            ending = constraint.close_instead(token, job.max_tokens - active.generated)
            if ending is not None:  # the token would leave no room to complete the JSON
                active.pending = []
                self._extend(active, ending)
                return
        if constraint is not None and not constraint.consume(token):
            self._finish(active, JobEnd(error=_forbidden(token, constraint)))
            return
        active.pending = [token]
        if self._emit(active, token) and constraint is not None:
            self._extend(active, constraint.forced())

    def _verify(self, active: _Active, first: int) -> None:
        """Keep the longest prefix of a draft that the job's sampler picks itself.

        The sampler picks at each draft position in turn (logits at ``first``,
        ``first + 1``, ...: the token before the draft, then each drafted token);
        while its pick equals the drafted token, that token is accepted (its KV
        cells are already right). The first pick that differs, or the pick after
        a wholly accepted draft, is the next token, sampled as usual. Greedy
        sampling thus gives the same tokens as decoding one at a time, and seeded
        sampling the same distribution. Cells of rejected draft tokens are removed.
        """
        assert active.sampler is not None and active.drafter is not None
        job, draft = active.job, active.draft
        constraint = job.constraint
        active.draft = []
        picked: list[int] = []
        ended = False
        # Under a grammar the matcher consumes each pick as it is made, so the mask
        # at the next position is the one decoding one token at a time would use.
        # An accepted token after which the grammar forces tokens (or ends) stops
        # verification: the forced tokens follow as in plain decoding.
        forced: list[int] | None = None
        for j in range(len(draft) + 1):
            if job.on_logits is not None:
                try:
                    job.on_logits(self._runtime.logits(first + j))
                except Exception as e:  # a broken consumer ends its own job only
                    if is_control_flow(e):
                        raise
                    self._finish(active, JobEnd(error=e))
                    return
            if constraint is not None:
                self._runtime.mask(first + j, constraint.mask())
            token = active.sampler.sample(first + j)
            if self._runtime.is_eog(token):
                ended = True
                break
            if constraint is not None and not constraint.consume(token):
                self._finish(active, JobEnd(error=_forbidden(token, constraint)))
                return
            picked.append(token)
            if j == len(draft) or token != draft[j]:
                break
            if constraint is not None:
                forced = constraint.forced()
                if forced or constraint.done:
                    break
                forced = None
        accepted = len(picked) if ended or forced is not None else len(picked) - 1
        active.drafter.verified(len(draft), accepted)
        keep = active.n_past - len(draft) + accepted  # the cells of accepted tokens stay
        if keep < active.n_past:
            self._seq_rm(active.entry.seq_id, keep)
            del active.entry.tokens[keep:]
        for token in picked:
            if not self._emit(active, token):
                return
        if ended:
            self._finish(active, JobEnd(finish="eog"))
        elif forced is not None:  # every pick is in the cache; the forced tokens come next
            active.pending = []
            self._extend(active, forced)
        else:
            active.pending = [picked[-1]]
            if constraint is not None:
                self._extend(active, constraint.forced())

    def _extend(self, active: _Active, forced: list[int]) -> None:
        """Hand out the tokens the grammar forced and queue them for the next batch."""
        for token in forced:
            active.forced += 1
            active.pending.append(token)
            if not self._emit(active, token):
                return
        constraint = active.job.constraint
        if constraint is not None and constraint.done:
            self._finish(active, JobEnd(finish="eog"))  # complete: nothing but its end is left

    def _emit(self, active: _Active, token: int) -> bool:
        """Give one generated token to the job; ``False``: the job ended."""
        job = active.job
        active.generated += 1
        if active.drafter is not None:
            active.history.append(token)
        try:
            keep_going = job.on_token(token)
        except Exception as e:  # a broken consumer ends its own job only
            if is_control_flow(e):
                raise
            self._finish(active, JobEnd(error=e))
            return False
        if not keep_going:
            self._finish(active, JobEnd(finish="stopped"))
            return False
        if active.generated >= job.max_tokens:
            complete = job.constraint is not None and job.constraint.done
            self._finish(active, JobEnd(finish="eog" if complete else "length"))
            return False
        return True

    def _make_room(self, rows: list[tuple[_Active, list[int], int]]) -> None:
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
        self, active: _Active, outcome: JobEnd, *, listed: bool = True, teardown: bool = False
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
        started = active.started_at or time.perf_counter()
        outcome.stats = RequestStats(
            prompt_tokens=len(active.job.prompt),
            reused_tokens=active.reused,
            prefilled_tokens=active.prefilled,
            decode_tokens=active.generated,
            forced_tokens=active.forced,
            drafted_tokens=active.drafter.drafted if active.drafter is not None else 0,
            accepted_tokens=active.drafter.accepted if active.drafter is not None else 0,
            queued_s=started - active.job.submitted_at,
            mask_s=active.job.constraint.mask_s if active.job.constraint is not None else 0.0,
        )
        self._stats.finished(outcome.stats)
        active.job.on_done(outcome)


def _forbidden(token: int, constraint: Constraint) -> BackendError:
    """The error of a sampled token the output's grammar refuses (the mask was not kept)."""
    return BackendError(
        f"the sampler picked token {token}, which the output's grammar forbids "
        f"({constraint.error or 'outside the mask'})"
    )
