"""What callers hand the local engine (jobs, options) and what it hands back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._sampling import SamplingParams
from ._stats import RequestStats

if TYPE_CHECKING:
    from ._guidance import Constraint

__all__ = ["EngineOptions", "Job", "JobEnd"]


@dataclass(frozen=True)
class EngineOptions:
    """How the engine's llama.cpp context is built (see ``plait.settings``)."""

    n_ctx: int
    n_seq_max: int = 16
    n_batch: int = 512
    n_threads: int | None = None
    type_k: int | None = None  # a GGML_TYPE_* value; None: f16
    type_v: int | None = None


@dataclass
class JobEnd:
    """How a job ended (formerly ``Outcome``).

    ``finish`` is "eog", "length", "stopped" or "cancelled" (only when the job's
    ``cancelled`` event was set); when ``error`` is set the job failed and
    ``finish`` means nothing. A job ends exactly once.
    """

    finish: str = "length"
    error: BaseException | None = None
    stats: RequestStats = field(default_factory=RequestStats)
    pin_id: int | None = None


@dataclass
class Job:
    """One request to the engine.

    Attributes:
        prompt: prompt tokens (at least one).
        sampling: how to pick tokens.
        max_tokens: tokens to generate at most (0: only prefill, e.g. to pin).
        on_token: called on the engine thread with each generated token;
            returns ``False`` to stop generation.
        on_done: called on the engine thread once, with the outcome.
        reuse: look for cached prefixes (off: prefill everything, for baselines).
        pin_ttl_s: after prefill, pin the prompt; ``inf`` means no expiry.
        on_logits: if set, called with a copy of each step's logits before
            sampling (for correctness checks; costs a copy of the vocabulary row).
        cancelled: set from any thread to stop the job at the next step (one
            still waiting for a sequence ends there, without taking one).
        constraint: the grammar the output must follow (llguidance): its mask is
            applied to the logits before sampling, the tokens it forces are
            appended without sampling (jump-forward) and the job ends once the
            grammar is complete. Used on the engine thread only.
        priority: admission and prefill order among waiting jobs (higher
            first; see ``_admission``, which ages waiting jobs).
        speculate: longest model-free draft to verify per step (0: none); drafts
            come from earlier occurrences of the sequence's last tokens in its own
            prompt and output and in earlier outputs (not used with a constraint).
    """

    prompt: list[int]
    sampling: SamplingParams
    max_tokens: int
    on_token: Callable[[int], bool]
    on_done: Callable[[JobEnd], None]
    reuse: bool = True
    pin_ttl_s: float | None = None
    on_logits: Callable[[list[float]], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    constraint: Constraint | None = None
    speculate: int = 0
    submitted_at: float = field(default_factory=time.perf_counter)
    priority: int = 0


def __getattr__(name: str) -> object:
    # ``Outcome`` was this class's name until it was renamed for what it is (and
    # to stop sharing a name with the workflows' class); kept one release.
    if name == "Outcome":
        import warnings

        warnings.warn(
            "plait.backends.local._jobs.Outcome is deprecated; use JobEnd",
            DeprecationWarning,
            stacklevel=2,
        )
        return JobEnd
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
