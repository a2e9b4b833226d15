"""The order in which the local engine admits and prefills waiting jobs.

Priority first, with aging so that nothing starves; waiting jobs whose prompts
open alike are kept together, so that they are admitted in one step and the
shared part is prefilled once (the later ones fork it from the first).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._jobs import Job

__all__ = ["AGING_S", "SHARED_MIN_TOKENS", "admission_order", "effective_priority"]

# Seconds of waiting worth one priority level: a job that has waited
# ``AGING_S * d`` seconds ranks with fresh jobs ``d`` levels above it, so a
# low-priority job is admitted within a bounded wait whatever keeps arriving.
AGING_S = 0.5

# Prompts that open with the same this many tokens share a prefix worth one
# prefill: more than a chat template's header and a one-line system prompt, so
# unrelated agents are not grouped, while a team brief or a pinned context is.
SHARED_MIN_TOKENS = 64


def effective_priority(job: Job, now: float, aging_s: float | None = None) -> float:
    """``job.priority`` plus one level per ``aging_s`` seconds it has waited.

    ``aging_s`` defaults to :data:`AGING_S`, read at each call (so that a
    benchmark can measure another rate).
    """
    rate = AGING_S if aging_s is None else aging_s
    return job.priority + max(0.0, now - job.submitted_at) / rate


def admission_order(jobs: Sequence[Job], now: float, aging_s: float | None = None) -> list[Job]:
    """``jobs`` highest effective priority first; ties keep arrival order (FIFO).

    A job that reuses the cache and whose prompt opens with the same
    :data:`SHARED_MIN_TOKENS` tokens as a better-ranked job's is placed right
    behind that job: admitted together, they prefill the shared part once (a
    cached or pinned copy of it is forked by both). Aging still bounds the wait
    of a job such a group passes.

    Args:
        jobs: the waiting jobs, in arrival order.
        now: the current ``time.perf_counter()`` reading.
        aging_s: seconds of waiting worth one priority level (default: :data:`AGING_S`).
    """
    ranked = sorted(jobs, key=lambda job: -effective_priority(job, now, aging_s))
    groups: dict[tuple[int, ...], list[Job]] = {}
    order: list[list[Job]] = []
    for job in ranked:
        if not job.reuse or len(job.prompt) <= SHARED_MIN_TOKENS:
            order.append([job])
            continue
        opening = tuple(job.prompt[:SHARED_MIN_TOKENS])
        group = groups.get(opening)
        if group is None:
            group = groups[opening] = []
            order.append(group)
        group.append(job)
    return [job for group in order for job in group]
