"""One admitted job's running state on the local engine, and what it cost."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ._jobs import Job
from ._prefix_index import Entry
from ._runtime import Sampler
from ._stats import RequestStats
from ._suffix import Drafter

__all__ = ["Active"]


@dataclass(eq=False)
class Active:
    """A job that holds a sequence: where it is in its prompt and its output."""

    job: Job
    entry: Entry
    sampler: Sampler | None = None
    wait_on: Active | None = None  # fork from this job once it has evaluated wait_len tokens
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
    admitted_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None

    @property
    def n_past(self) -> int:
        return len(self.entry.tokens)

    def stats(self) -> RequestStats:
        """What the job cost so far (its stats once it ends)."""
        job = self.job
        started = self.started_at or time.perf_counter()
        return RequestStats(
            prompt_tokens=len(job.prompt),
            reused_tokens=self.reused,
            prefilled_tokens=self.prefilled,
            decode_tokens=self.generated,
            forced_tokens=self.forced,
            drafted_tokens=self.drafter.drafted if self.drafter is not None else 0,
            accepted_tokens=self.drafter.accepted if self.drafter is not None else 0,
            queued_s=started - job.submitted_at,
            queue_wait_s=self.admitted_at - job.submitted_at,
            mask_s=job.constraint.mask_s if job.constraint is not None else 0.0,
            priority=job.priority,
        )
