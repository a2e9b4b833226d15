"""The local engine and backend on FakeLlama: the loop, forks, eviction and failures, no model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Sequence

import pytest

from plait import ChatRequest, ToolSpec
from plait.agents import Agent
from plait.backends.local._engine import Engine, EngineOptions, Job, JobEnd
from plait.backends.local._sampling import SamplingParams
from plait.backends.local.testing import EOS, FakeLlama, Fault
from plait.errors import BackendError
from tests._engine_jobs import WAIT_S, JobRecord


def counting(context: Sequence[int]) -> int:
    """A "model" whose next token depends on everything the sequence holds."""
    return 3 + sum(context) * 31 % 200


def expected(prompt: list[int], n: int, model: Callable[[Sequence[int]], int] = counting) -> list:
    out: list[int] = []
    for _ in range(n):
        out.append(model(prompt + out))
    return out


class Run(JobRecord):
    """One job and what came of it."""

    def __init__(
        self,
        prompt: list[int],
        max_tokens: int = 6,
        *,
        on_token: Callable[[int], bool] | None = None,
        on_done: Callable[[JobEnd], None] | None = None,
        on_logits: Callable[[list[float]], None] | None = None,
    ) -> None:
        super().__init__()
        self._on_token = on_token or (lambda token: True)
        self.job = Job(
            prompt=prompt,
            sampling=SamplingParams(temperature=0.0),
            max_tokens=max_tokens,
            on_token=self._token,
            on_done=on_done or self._done,
            on_logits=on_logits,
        )

    def _token(self, token: int) -> bool:
        super()._token(token)
        return self._on_token(token)


def together(engine: Engine, runs: Sequence[Run]) -> None:
    """Submit jobs so the engine admits them in the same loop iteration."""

    def submit_all() -> None:
        for run in runs:
            engine.submit(run.job)

    engine.call(submit_all)


def engine_on(fake: FakeLlama, n_ctx: int = 256, n_seq_max: int = 4) -> Engine:
    return fake.engine(EngineOptions(n_ctx=n_ctx, n_seq_max=n_seq_max, n_batch=64))


PROMPT_A = [1, 10, 11, 12, 13, 14]
PROMPT_B = [1, 20, 21, 22, 23, 24]
PROMPT_C = [1, 30, 31, 32, 33, 34]


def test_normal_generation_matches_the_script_and_frees_the_samplers():
    fake = FakeLlama(next_token=counting)
    engine = engine_on(fake)
    runs = [Run(PROMPT_A), Run(PROMPT_B)]
    together(engine, runs)
    for run, prompt in zip(runs, (PROMPT_A, PROMPT_B), strict=True):
        outcome = run.wait()
        assert outcome.error is None and outcome.finish == "length"
        assert run.tokens == expected(prompt, 6)
    runtime = fake.runtimes[0]
    assert runtime.open_samplers == 0
    assert max(len(batch) for batch in runtime.batches) == 2  # decoded side by side
    engine.close()
    assert runtime.closed


def test_a_loop_crash_fails_running_and_queued_jobs_with_the_cause_and_later_submits():
    fake = FakeLlama(next_token=counting, faults=[Fault("decode", at=4)])
    engine = engine_on(fake, n_seq_max=2)
    running = [Run(PROMPT_A, max_tokens=50), Run(PROMPT_B, max_tokens=50)]
    queued = Run(PROMPT_C)  # no sequence left for it: it waits in the queue
    together(engine, [*running, queued])
    for run in running:
        error = run.wait().error
        assert isinstance(error, BackendError)
        assert "decode call 4 failed" in str(error)
        assert isinstance(error.__cause__, RuntimeError)
        assert run.tokens  # it was generating when the engine broke
    queued_error = queued.wait().error
    assert isinstance(queued_error, BackendError) and "decode call 4 failed" in str(queued_error)
    assert isinstance(engine.broken, BackendError)
    with pytest.raises(BackendError, match="decode call 4 failed") as later:
        engine.submit(Run(PROMPT_A).job)
    assert isinstance(later.value.__cause__, RuntimeError)
    with pytest.raises(BackendError, match="decode call 4 failed"):
        engine.call(lambda: None)
    runtime = fake.runtimes[0]
    assert runtime.closed and runtime.open_samplers == 0


def test_a_sampler_that_raises_breaks_the_engine():
    fake = FakeLlama(next_token=counting, faults=[Fault("sample", at=2)])
    engine = engine_on(fake)
    run = Run(PROMPT_A)
    engine.submit(run.job)
    error = run.wait().error
    assert isinstance(error, BackendError) and "sample call 2 failed" in str(error)
    assert run.tokens == expected(PROMPT_A, 1)


def test_a_runtime_that_cannot_open_fails_the_job_and_later_submits():
    fake = FakeLlama(next_token=counting, faults=[Fault("open")])
    engine = engine_on(fake)
    run = Run(PROMPT_A)
    engine.submit(run.job)
    assert "open call 1 failed" in str(run.wait().error)
    with pytest.raises(BackendError, match="open call 1 failed"):
        engine.submit(Run(PROMPT_B).job)


def test_an_on_done_that_raises_breaks_the_engine_and_names_the_cause():
    fake = FakeLlama(next_token=counting)
    engine = engine_on(fake)

    def broken(outcome: JobEnd) -> None:
        raise ValueError("consumer bug")

    short = Run(PROMPT_A, max_tokens=1, on_done=broken)
    long = Run(PROMPT_B, max_tokens=50)
    together(engine, [short, long])
    error = long.wait().error
    assert isinstance(error, BackendError) and "ValueError: consumer bug" in str(error)
    assert isinstance(error.__cause__, ValueError)
    assert engine.broken is not None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_every_job_is_told_of_a_crash_even_when_one_on_done_raises():
    fake = FakeLlama(next_token=counting, faults=[Fault("decode", at=3)])
    engine = engine_on(fake)
    told: list[JobEnd] = []

    def broken(outcome: JobEnd) -> None:
        told.append(outcome)
        raise ValueError("consumer bug while failing")

    first, second = Run(PROMPT_A, 50, on_done=broken), Run(PROMPT_B, 50)
    together(engine, [first, second])
    assert isinstance(second.wait().error, BackendError)
    assert len(told) == 1 and isinstance(told[0].error, BackendError)
    engine.close()  # waits for the thread, which raises the consumer's error last
    assert fake.runtimes[0].closed


def test_an_on_token_or_on_logits_that_raises_ends_only_its_own_job():
    fake = FakeLlama(next_token=counting)
    engine = engine_on(fake)

    def bad_token(token: int) -> bool:
        raise KeyError("detokenizer")

    def bad_logits(row: list[float]) -> None:
        raise ValueError("logits consumer")

    token_fails = Run(PROMPT_A, on_token=bad_token)
    logits_fails = Run(PROMPT_B, on_logits=bad_logits)
    fine = Run(PROMPT_C)
    together(engine, [token_fails, logits_fails, fine])
    assert isinstance(token_fails.wait().error, KeyError)
    assert isinstance(logits_fails.wait().error, ValueError)
    assert fine.wait().error is None and fine.tokens == expected(PROMPT_C, 6)
    assert engine.broken is None
    again = Run(PROMPT_A)
    engine.submit(again.job)
    assert again.wait().error is None


def test_a_failed_decode_status_fails_that_batch_only():
    fake = FakeLlama(next_token=counting, faults=[Fault("decode", at=2, status=-1)])
    engine = engine_on(fake)
    run = Run(PROMPT_A)
    engine.submit(run.job)
    assert "status -1" in str(run.wait().error)
    again = Run(PROMPT_A)
    engine.submit(again.job)
    assert again.wait().error is None and again.tokens == expected(PROMPT_A, 6)
    assert engine.broken is None


def test_jobs_sharing_a_prefix_prefill_it_once_and_fork_it():
    fake = FakeLlama(next_token=counting)
    engine = engine_on(fake)
    shared = list(range(3, 40))
    first, second = Run([*shared, 50, 51]), Run([*shared, 60, 61])
    together(engine, [first, second])
    assert first.wait().error is None and second.wait().error is None
    assert first.tokens == expected(first.job.prompt, 6)
    assert second.tokens == expected(second.job.prompt, 6)  # the fork holds the right cells
    reused = sorted(r.wait().stats.reused_tokens for r in (first, second))
    assert reused == [0, len(shared)]
    runtime = fake.runtimes[0]
    # The shared cells are held once: two prompts' and replies' worth, less one prefix.
    assert runtime.cells_used == 2 * (len(shared) + 2 + 5) - len(shared)


def test_a_full_cache_evicts_an_idle_prefix_then_fails_the_newest_running_job():
    fake = FakeLlama(next_token=counting)
    engine = engine_on(fake, n_ctx=40, n_seq_max=4)
    idle = Run([1, *range(100, 114)], max_tokens=4)  # 18 cells in sequence 0, kept cached
    engine.submit(idle.job)
    assert idle.wait().error is None
    older = Run([1, *range(120, 134)], max_tokens=20)  # 34 cells when done: fits alone
    newer = Run([1, *range(140, 154)], max_tokens=20)
    together(engine, [older, newer])
    full = newer.wait().error
    assert isinstance(full, BackendError) and "is full" in str(full)
    assert older.wait().error is None
    assert older.tokens == expected(older.job.prompt, 20)
    assert fake.runtimes[0].tokens(0) == []  # the idle prefix went first
    assert engine.stats().evictions >= 2  # the idle prefix, then the failed job's cells
    assert engine.broken is None


def test_cancelling_mid_generation_frees_the_sequence():
    fake = FakeLlama(next_token=counting)
    engine = engine_on(fake, n_seq_max=1)  # one sequence: the next job needs it back

    def stop_after_three(token: int) -> bool:
        if len(cancelled.tokens) == 3:
            cancelled.job.cancelled.set()
        return True

    cancelled = Run(PROMPT_A, max_tokens=50, on_token=stop_after_three)
    nxt = Run(PROMPT_B)
    together(engine, [cancelled, nxt])
    outcome = cancelled.wait()
    assert outcome.error is None and outcome.finish == "cancelled"
    assert outcome.stats.decode_tokens == 3
    assert nxt.wait().error is None and nxt.tokens == expected(PROMPT_B, 6)
    assert fake.runtimes[0].open_samplers == 0


def test_closing_the_engine_fails_running_jobs_instead_of_cancelling_them():
    fake = FakeLlama(next_token=counting)
    engine = engine_on(fake)
    generating, release = threading.Event(), threading.Event()

    def hold(token: int) -> bool:
        generating.set()
        assert release.wait(WAIT_S)
        return True

    running = Run(PROMPT_A, 50, on_token=hold)
    engine.submit(running.job)
    assert generating.wait(WAIT_S)
    closer = threading.Thread(target=engine.close)
    closer.start()
    probes = []
    while True:  # until close() has marked the engine closed
        probe = Run(PROMPT_B)
        try:
            engine.submit(probe.job)
        except BackendError as e:
            assert "closed" in str(e)
            break
        probes.append(probe)
    release.set()
    closer.join(WAIT_S)
    outcome = running.wait()
    assert isinstance(outcome.error, BackendError)
    assert "closed while this request ran" in str(outcome.error)
    assert all(isinstance(p.wait().error, BackendError) for p in probes)
    assert engine.broken is None and fake.runtimes[0].closed


def test_eog_ends_generation():
    fake = FakeLlama(next_token=lambda ctx: EOS if len(ctx) > 8 else 7)
    engine = engine_on(fake)
    run = Run(PROMPT_A, max_tokens=50)
    engine.submit(run.job)
    outcome = run.wait()
    assert outcome.finish == "eog" and run.tokens == [7, 7, 7]


# -- LocalBackend on the fake --------------------------------------------------


async def test_backend_streams_the_scripted_reply():
    fake = FakeLlama(reply=lambda prompt: "Paris." if "France" in prompt else "No idea.")
    backend = fake.backend(n_ctx=512, n_seq_max=4)
    deltas: list[str] = []
    done = None
    async for chunk in backend.stream(ChatRequest.from_prompt("Capital of France?")):
        deltas.append(chunk.delta)
        done = chunk.completion or done
    assert done is not None and done.text == "Paris." == "".join(deltas)
    assert done.finish_reason == "stop" and done.model == "fake-llama"
    again = await backend.complete(ChatRequest.from_prompt("Capital of Peru?"))
    assert again.text == "No idea." and again.usage.cached_prompt_tokens > 0


async def test_backend_reads_tool_calls_from_the_envelope_once():
    add = ToolSpec(
        name="add",
        description="Add two numbers.",
        parameters={"type": "object", "properties": {"a": {"type": "integer"}}},
    )
    fake = FakeLlama(reply='{"tool_calls": [{"name": "add", "arguments": {"a": 2}}]}')
    backend = fake.backend(n_ctx=1024, n_seq_max=2, structured="llguidance")
    request = ChatRequest.from_prompt("Add 2.", system="You add.", tools=(add,))
    deltas = [c.delta async for c in backend.stream(request) if c.delta]
    done = await backend.complete(request)
    assert deltas == []  # an envelope is read whole, never streamed
    assert done.finish_reason == "tool_calls" and done.text == ""
    assert [(c.name, c.parsed_arguments()) for c in done.tool_calls] == [("add", {"a": 2})]
    assert fake.runtimes[0].masks  # decoding was constrained
    assert done.usage.forced_tokens > 0  # and the envelope's keys were not sampled


async def test_backend_raises_the_engine_failure_instead_of_a_partial_completion():
    fake = FakeLlama(reply="A long answer that never finishes.", faults=[Fault("decode", at=5)])
    backend = fake.backend(n_ctx=512, n_seq_max=4)
    with pytest.raises(BackendError, match="decode call 5 failed"):
        await backend.complete(ChatRequest.from_prompt("Go."))
    with pytest.raises(BackendError, match="decode call 5 failed"):
        await backend.complete(ChatRequest.from_prompt("Again."))


async def test_an_agent_on_a_broken_engine_ends_with_the_error():
    fake = FakeLlama(
        reply="The answer is forty-two, as everyone knows.", faults=[Fault("decode", at=6)]
    )
    agent: Agent[str] = Agent("helper", "You answer briefly.", fake.backend(n_ctx=512, n_seq_max=2))
    with pytest.raises(BackendError, match="decode call 6 failed"):
        await agent.arun("What is the answer?")


async def test_closing_a_stream_early_frees_the_sequence():
    calls, released = [], threading.Event()

    def endless_x(context: Sequence[int]) -> int:
        calls.append(len(context))
        if len(calls) == 2:  # a second token waits until the first stream is closed
            assert released.wait(WAIT_S)
        return x

    fake = FakeLlama(next_token=endless_x)
    (x,) = fake.tokenize(b"x", add_bos=False)
    backend = fake.backend(n_ctx=1024, n_seq_max=1)  # one sequence: the next request needs it
    chunks = backend.stream(ChatRequest.from_prompt("Write a lot.", max_tokens=200))
    assert isinstance(chunks, AsyncGenerator)
    async for chunk in chunks:
        if chunk.delta:
            break
    await chunks.aclose()
    released.set()
    done = await asyncio.wait_for(
        backend.complete(ChatRequest.from_prompt("Now something else.", max_tokens=5)), WAIT_S
    )
    assert done.text == "x" * 5 and done.finish_reason == "length"
    cancelled = backend.stats().recent[-2]
    assert cancelled.decode_tokens <= 2  # cancelled at the step after its first or second token
    assert fake.runtimes[0].open_samplers == 0


def test_two_engines_share_one_compute_lane_and_keep_their_own_stats():
    from plait.backends.local._lane import ComputeLane

    lane = ComputeLane(name="plait-engine-test")
    fake = FakeLlama(next_token=counting)
    first = Engine(fake.open, EngineOptions(n_ctx=256, n_seq_max=4, n_batch=64), lane)
    second = Engine(fake.open, EngineOptions(n_ctx=256, n_seq_max=2, n_batch=64), lane)
    threads: list[str] = []
    runs = [Run(PROMPT_A, 8), Run(PROMPT_B, 5)]
    for engine, run in zip((first, second), runs, strict=True):
        engine.call(lambda: threads.append(threading.current_thread().name))
        engine.submit(run.job)
    for run, prompt, n in zip(runs, (PROMPT_A, PROMPT_B), (8, 5), strict=True):
        outcome = run.wait()
        assert outcome.error is None and run.tokens == expected(prompt, n)
    assert threads == ["plait-engine-test", "plait-engine-test"]
    assert lane.tenants == 2
    assert first.stats().decode_tokens == 8 and second.stats().decode_tokens == 5
    first.close()
    assert fake.runtimes[0].closed and not fake.runtimes[1].closed
    later = Run(PROMPT_C, 3)
    second.submit(later.job)  # the lane goes on serving the engine left
    assert later.wait().error is None and later.tokens == expected(PROMPT_C, 3)
    second.close()
