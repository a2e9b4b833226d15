"""Counters of the local engine, per request and per backend."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

__all__ = ["EngineStats", "RequestStats", "StatsRecorder"]


@dataclass(frozen=True)
class RequestStats:
    """What one request cost the engine.

    Attributes:
        prompt_tokens: tokens in the rendered prompt.
        reused_tokens: prompt tokens taken from the KV cache instead of prefilled.
        prefilled_tokens: prompt tokens this request evaluated itself.
        decode_tokens: generated tokens (sampled and forced).
        forced_tokens: generated tokens the grammar forced, appended without sampling.
        drafted_tokens: tokens proposed by speculative drafts (model-free).
        accepted_tokens: drafted tokens the sampler accepted (decode steps saved).
        queued_s: seconds from submission to the request's first batch.
        queue_wait_s: seconds from submission to admission (when the request
            got its sequence; it waits longer while every sequence is taken).
        mask_s: seconds spent computing grammar masks and forced tokens.
        priority: the request's priority (higher is served first; 0: neutral).
    """

    prompt_tokens: int = 0
    reused_tokens: int = 0
    prefilled_tokens: int = 0
    decode_tokens: int = 0
    forced_tokens: int = 0
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    queued_s: float = 0.0
    queue_wait_s: float = 0.0
    mask_s: float = 0.0
    priority: int = 0

    @property
    def sampled_tokens(self) -> int:
        """Generated tokens that were sampled (each one a decode step of its own)."""
        return self.decode_tokens - self.forced_tokens


@dataclass(frozen=True)
class EngineStats:
    """Totals of one engine (one model in one process) since it started.

    Attributes:
        requests: finished requests.
        prompt_tokens: their prompt tokens.
        reused_tokens: prompt tokens served from the KV cache.
        prefilled_tokens: prompt tokens evaluated.
        decode_tokens: tokens generated (sampled and forced).
        forced_tokens: generated tokens a grammar forced (appended, not sampled).
        drafted_tokens: tokens proposed by speculative drafts.
        accepted_tokens: drafted tokens accepted.
        mask_s: seconds spent computing grammar masks and forced tokens.
        batches: ``llama_decode`` calls.
        batch_tokens: tokens over all batches.
        batch_sequences: sequences over all batches (a sequence counts once per batch).
        evictions: cached sequences evicted to make room.
        recent: the last finished requests' stats, oldest first.
    """

    requests: int = 0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    prefilled_tokens: int = 0
    decode_tokens: int = 0
    forced_tokens: int = 0
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    mask_s: float = 0.0
    batches: int = 0
    batch_tokens: int = 0
    batch_sequences: int = 0
    evictions: int = 0
    recent: tuple[RequestStats, ...] = ()

    @property
    def mean_batch_sequences(self) -> float:
        """Batch occupancy: sequences served by an average ``llama_decode`` call."""
        return self.batch_sequences / self.batches if self.batches else 0.0

    @property
    def sampled_tokens(self) -> int:
        """Generated tokens that were sampled."""
        return self.decode_tokens - self.forced_tokens

    @property
    def reuse_ratio(self) -> float:
        """Share of prompt tokens that were not prefilled again."""
        return self.reused_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass
class StatsRecorder:
    """Mutable counters, written by the engine thread only; read through :meth:`snapshot`."""

    totals: EngineStats = field(default_factory=EngineStats)
    recent: deque[RequestStats] = field(default_factory=lambda: deque(maxlen=64))

    def batch(self, tokens: int, sequences: int) -> None:
        t = self.totals
        self.totals = replace(
            t,
            batches=t.batches + 1,
            batch_tokens=t.batch_tokens + tokens,
            batch_sequences=t.batch_sequences + sequences,
        )

    def eviction(self) -> None:
        self.totals = replace(self.totals, evictions=self.totals.evictions + 1)

    def finished(self, request: RequestStats) -> None:
        t = self.totals
        self.totals = replace(
            t,
            requests=t.requests + 1,
            prompt_tokens=t.prompt_tokens + request.prompt_tokens,
            reused_tokens=t.reused_tokens + request.reused_tokens,
            prefilled_tokens=t.prefilled_tokens + request.prefilled_tokens,
            decode_tokens=t.decode_tokens + request.decode_tokens,
            forced_tokens=t.forced_tokens + request.forced_tokens,
            drafted_tokens=t.drafted_tokens + request.drafted_tokens,
            accepted_tokens=t.accepted_tokens + request.accepted_tokens,
            mask_s=t.mask_s + request.mask_s,
        )
        self.recent.append(request)

    def snapshot(self) -> EngineStats:
        # Rebinding ``totals`` is atomic, so a reader sees one consistent version.
        return replace(self.totals, recent=tuple(self.recent))
