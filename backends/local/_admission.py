"""The order in which the local engine admits waiting jobs: priority with aging."""

from __future__ import annotations

from collections.abc import Sequence

from ._jobs import Job

__all__ = ["AGING_S", "admission_order", "effective_priority"]

# Seconds of waiting worth one priority level: a job that has waited
# ``AGING_S * d`` seconds ranks with fresh jobs ``d`` levels above it, so a
# low-priority job is admitted within a bounded wait whatever keeps arriving.
AGING_S = 0.5


def effective_priority(job: Job, now: float, aging_s: float = AGING_S) -> float:
    """``job.priority`` plus one level per ``aging_s`` seconds it has waited."""
    return job.priority + max(0.0, now - job.submitted_at) / aging_s


def admission_order(jobs: Sequence[Job], now: float, aging_s: float = AGING_S) -> list[Job]:
    """``jobs`` highest effective priority first; ties keep arrival order (FIFO).

    Args:
        jobs: the waiting jobs, in arrival order.
        now: the current ``time.perf_counter()`` reading.
        aging_s: seconds of waiting worth one priority level.
    """
    return sorted(jobs, key=lambda job: -effective_priority(job, now, aging_s))
