"""The local engine's scheduling on FakeLlama: prefill by priority, prefix groups, queue wait."""

from __future__ import annotations

from plait.backends.local._admission import SHARED_MIN_TOKENS, admission_order
from plait.backends.local._engine import EngineOptions, Job, JobEnd
from plait.backends.local._sampling import SamplingParams
from plait.backends.local._scheduler import Scheduler
from plait.backends.local._stats import StatsRecorder
from plait.backends.local.testing import FakeLlama
from tests._engine_jobs import JobRecord


def counting(context) -> int:
    return 3 + sum(context) * 31 % 200


def _job(prompt: list[int], *, priority: int = 0, submitted_at: float = 0.0, **kw) -> Job:
    return Job(
        prompt=prompt,
        sampling=SamplingParams(temperature=0.0),
        max_tokens=kw.pop("max_tokens", 4),
        on_token=kw.pop("on_token", lambda _: True),
        on_done=kw.pop("on_done", lambda _: None),
        submitted_at=submitted_at,
        priority=priority,
        **kw,
    )


SHARED = list(range(3, 3 + SHARED_MIN_TOKENS + 10))


def test_waiting_jobs_that_open_alike_are_admitted_together() -> None:
    lead = _job([*SHARED, 50], priority=3)
    other = _job([1, *range(100, 180)], priority=2)
    follower = _job([*SHARED, 60], priority=0)
    assert admission_order([other, follower, lead], now=0.0) == [lead, follower, other]


def test_a_short_common_opening_or_no_reuse_does_not_group() -> None:
    header = list(range(3, 3 + SHARED_MIN_TOKENS - 1))  # one token short of a group
    lead = _job([*header, 50, *range(200, 220)], priority=3)
    other = _job([1, *range(100, 180)], priority=2)
    near = _job([*header, 60, *range(300, 320)], priority=0)
    assert admission_order([lead, other, near], now=0.0) == [lead, other, near]
    fresh = _job([*SHARED, 60], priority=0, reuse=False)
    assert admission_order([_job([*SHARED, 50], priority=3), other, fresh], now=0.0)[1] is other


def _scheduler(n_batch: int = 64, n_seq_max: int = 4):
    options = EngineOptions(n_ctx=1024, n_seq_max=n_seq_max, n_batch=n_batch)
    runtime = FakeLlama(next_token=counting).open(options)
    return Scheduler(runtime, options, StatsRecorder()), runtime


def test_prefill_that_does_not_fit_one_batch_goes_by_priority() -> None:
    scheduler, runtime = _scheduler(n_batch=64)
    low = _job([1, *range(10, 210)])  # 200 prompt tokens: four batches of prefill
    assert scheduler.admit(low)
    scheduler.step()  # the first chunk of the low job
    high = _job([7, *range(300, 340)], priority=5, submitted_at=low.submitted_at)
    assert scheduler.admit(high)
    scheduler.step()
    rows = {row.seq_id: len(row.tokens) for row in runtime.batches[-1]}
    # The later, higher job's whole prompt (but its last token) went in first.
    assert sorted(rows.values()) == [64 - 40, 40]
    fifo, runtime2 = _scheduler(n_batch=64)
    first = _job([1, *range(10, 210)])
    assert fifo.admit(first)
    fifo.step()
    assert fifo.admit(_job([7, *range(300, 340)], submitted_at=first.submitted_at + 1.0))
    fifo.step()
    (only,) = runtime2.batches[-1]  # equal priority: the earlier job's prefill goes on
    assert len(only.tokens) == 64


def test_queue_wait_counts_from_submission_to_admission() -> None:
    scheduler, _ = _scheduler()
    ended: list[JobEnd] = []
    job = _job([1, 5, 6, 7], on_done=ended.append, priority=2, submitted_at=0.0)
    assert scheduler.admit(job)
    while scheduler.busy:
        scheduler.step()
    (outcome,) = ended
    assert outcome.stats.queue_wait_s > 1.0  # submitted at perf_counter 0.0, long ago
    assert outcome.stats.queued_s >= outcome.stats.queue_wait_s
    assert outcome.stats.priority == 2


def test_a_job_cancelled_while_waiting_for_a_sequence_ends_at_once() -> None:
    fake = FakeLlama(next_token=counting)
    engine = fake.engine(EngineOptions(n_ctx=512, n_seq_max=1, n_batch=64))
    running, waiting = JobRecord(), JobRecord()
    tokens_when_told: list[int] = []

    def on_token(token: int) -> bool:
        running._token(token)
        if len(running.tokens) == 3:  # the caller of the waiting job gives up
            waiting_job.cancelled.set()
        return True

    def on_waiting_done(outcome: JobEnd) -> None:
        tokens_when_told.append(len(running.tokens))
        waiting._done(outcome)

    running_job = _job(
        [1, 10, 11, 12], priority=5, max_tokens=60, on_token=on_token, on_done=running._done
    )
    waiting_job = _job([7, 20, 21, 22], priority=0, on_done=on_waiting_done)

    def submit_both() -> None:  # one step sees both: the higher takes the only sequence
        engine.submit(waiting_job)
        engine.submit(running_job)

    engine.call(submit_both)
    outcome = waiting.wait()
    assert outcome.error is None and outcome.finish == "cancelled"
    assert outcome.stats.decode_tokens == 0 and outcome.stats.prefilled_tokens == 0
    assert tokens_when_told[0] < 60  # told at once, not once the sequence came free
    assert running.wait().error is None and len(running.tokens) == 60


async def test_a_local_completion_and_its_chat_span_carry_the_queue_wait() -> None:
    from plait._span_attributes import chat_attributes, response_attributes
    from plait.chat import ChatRequest

    backend = FakeLlama(reply=lambda prompt: "ok").backend(n_ctx=256)
    request = ChatRequest.from_prompt("hi", max_tokens=4, priority=2)
    completion = await backend.complete(request)
    wait = completion.timings.queue_wait_s
    assert wait is not None and 0.0 <= wait <= completion.timings.total_s
    assert response_attributes(completion)["plait.request.queue_wait_s"] == wait
    assert chat_attributes("local", request)["plait.request.priority"] == 2
    assert backend.stats().recent[-1].priority == 2
