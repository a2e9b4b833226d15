"""Model-free speculative decoding on FakeLlama: same greedy tokens, fewer steps, clean rollback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence

from plait import ChatRequest
from plait.backends.local._engine import Engine, EngineOptions, Job
from plait.backends.local._sampling import SamplingParams
from plait.backends.local._suffix import Drafter, OutputIndex
from plait.backends.local.testing import BOS, EOS, FakeLlama
from tests._engine_jobs import WAIT_S, JobRecord

DOCUMENT = [3 + (i * 37) % 97 for i in range(60)]  # no 3-gram repeats inside it
PROMPT = [BOS, 200, 201, *DOCUMENT, 202, 203]


def copier(prompt: Sequence[int], changes: dict[int, int]) -> Callable[[Sequence[int]], int]:
    """A "model" that copies the document, with ``changes`` at some output positions."""

    def next_token(context: Sequence[int]) -> int:
        if list(context[: len(prompt)]) != list(prompt):
            return EOS
        n = len(context) - len(prompt)
        if n >= len(DOCUMENT):
            return EOS
        return changes.get(n, DOCUMENT[n])

    return next_token


class Run(JobRecord):
    def __init__(self, prompt: list[int], speculate: int, max_tokens: int = 200) -> None:
        super().__init__()
        self.job = Job(
            prompt=prompt,
            sampling=SamplingParams(temperature=0.0),
            max_tokens=max_tokens,
            on_token=self._token,
            on_done=self._done,
            speculate=speculate,
        )


def generate(fake: FakeLlama, prompt: list[int], speculate: int, **kw) -> tuple[Run, Engine]:
    engine = fake.engine(EngineOptions(n_ctx=2048, n_seq_max=2, n_batch=64))
    run = Run(prompt, speculate, **kw)
    engine.submit(run.job)
    run.wait()
    return run, engine


def test_greedy_output_is_token_identical_with_fewer_decode_steps():
    changes = {10: 150, 30: 151, 31: 152}  # where the copy departs from the document
    plain_fake = FakeLlama(next_token=copier(PROMPT, changes))
    plain, _ = generate(plain_fake, PROMPT, speculate=0)
    fast_fake = FakeLlama(next_token=copier(PROMPT, changes))
    fast, engine = generate(fast_fake, PROMPT, speculate=8)
    assert fast.tokens == plain.tokens and len(plain.tokens) == len(DOCUMENT)
    stats = fast.wait().stats
    assert stats.accepted_tokens > len(DOCUMENT) // 2 and stats.drafted_tokens > 0
    assert len(fast_fake.runtimes[0].batches) < len(plain_fake.runtimes[0].batches) // 2
    # Rejected draft cells were removed: the sequence holds exactly prompt + output.
    runtime = fast_fake.runtimes[0]
    (held,) = [runtime.tokens(s) for s in range(2) if runtime.tokens(s)]
    output = PROMPT + fast.tokens
    assert held in (output, output[:-1])  # the last token is in if a draft held it
    engine.close()


def test_max_tokens_is_exact_under_speculation():
    fake = FakeLlama(next_token=copier(PROMPT, {}))
    run, engine = generate(fake, PROMPT, speculate=8, max_tokens=13)
    assert run.wait().finish == "length" and run.tokens == DOCUMENT[:13]
    engine.close()


def test_text_that_does_not_repeat_backs_off_drafting():
    def fresh(context: Sequence[int]) -> int:  # never continues an earlier 3-gram
        return 3 + (len(context) * 7919) % 250

    fake = FakeLlama(next_token=fresh)
    # A prompt whose every 3-gram recurs, so drafts are proposed and all fail.
    prompt = [BOS] + [5, 6, 7] * 30
    run, engine = generate(fake, prompt, speculate=8, max_tokens=120)
    stats = run.wait().stats
    assert stats.accepted_tokens == 0
    assert stats.drafted_tokens < 120  # paused after misses, not a draft every step
    engine.close()


def test_a_later_request_drafts_from_an_earlier_output():
    fake = FakeLlama(next_token=copier(PROMPT, {}))
    engine = fake.engine(EngineOptions(n_ctx=4096, n_seq_max=2, n_batch=64))
    first = Run(PROMPT, speculate=8)
    engine.submit(first.job)
    first.wait()
    # Another prompt without the document; the "model" writes the same text again.
    other = [BOS, 210, 211, 212]

    def again(context: Sequence[int]) -> int:
        n = len(context) - len(other)
        return DOCUMENT[n] if n < len(DOCUMENT) else EOS

    fake._next_token = again
    second = Run(other, speculate=8)
    engine.submit(second.job)
    assert second.wait().error is None and second.tokens == DOCUMENT
    assert second.wait().stats.accepted_tokens > len(DOCUMENT) // 2
    engine.close()


def test_cancelling_mid_speculation_frees_the_sequence():
    release, calls = threading.Event(), []
    model = copier(PROMPT, {})

    def slow(context: Sequence[int]) -> int:
        calls.append(1)
        if len(calls) == 12:  # inside a verification, drafts in flight
            assert release.wait(WAIT_S)
        return model(context)

    fake = FakeLlama(next_token=slow)
    engine = fake.engine(EngineOptions(n_ctx=2048, n_seq_max=1, n_batch=64))
    run = Run(PROMPT, speculate=8)
    engine.submit(run.job)
    while len(calls) < 12:
        threading.Event().wait(0.01)
    run.job.cancelled.set()
    release.set()
    assert run.wait().finish == "cancelled"
    fake._next_token = copier([BOS, 9], {})
    after = Run([BOS, 9], speculate=8, max_tokens=5)  # needs the only sequence
    engine.submit(after.job)
    assert after.wait().error is None and after.tokens == DOCUMENT[:5]
    assert fake.runtimes[0].open_samplers == 0
    engine.close()


def test_the_drafter_finds_the_longest_earlier_match():
    tokens = [1, 2, 3, 4, 9, 9, 1, 2, 3]
    drafter = Drafter(tokens, None, k=3)
    assert drafter.propose(10) == [4, 9, 9]
    outputs = OutputIndex()
    outputs.add([7, 8, 5, 6, 0, 0])
    assert Drafter([4, 7, 8, 5], outputs, k=2).propose(10) == [6, 0]
    assert Drafter([4, 7, 8, 5], None, k=2).propose(10) == []


async def test_the_backend_counts_drafted_and_accepted_tokens_in_usage():
    document = "The quick brown fox jumps over the lazy dog by the quiet river bank at dawn."
    request = ChatRequest.from_prompt(f"Repeat this: {document}", temperature=0.0)
    on = (
        await FakeLlama(reply=document)
        .backend(n_ctx=1024, n_seq_max=2, speculate=8)
        .complete(request)
    )
    off = await FakeLlama(reply=document).backend(n_ctx=1024, n_seq_max=2).complete(request)
    assert on.text == off.text == document
    assert on.usage.completion_tokens == off.usage.completion_tokens
    assert on.usage.drafted_tokens >= on.usage.accepted_tokens > len(document) // 2
    assert off.usage.drafted_tokens == off.usage.accepted_tokens == 0


async def test_a_structured_request_speculates_under_its_grammar_with_the_same_output():
    document = "The quick brown fox jumps over the lazy dog by the quiet river bank at dawn."
    schema = {
        "type": "object",
        "properties": {"quote": {"type": "string"}, "words": {"type": "integer"}},
        "required": ["quote", "words"],
        "additionalProperties": False,
    }
    # The draft copies the document, then runs on past the closing quote into
    # prompt text the grammar forbids there ("." after the string): it is cut.
    # (The reply is written the way the grammar lays JSON out, ": " and ", ".)
    reply = json.dumps({"quote": document, "words": 16})
    request = ChatRequest.from_prompt(
        f'Quote this: {document}" and more', temperature=0.0, response_schema=schema
    )
    on = (
        await FakeLlama(reply=reply)
        .backend(n_ctx=1024, n_seq_max=2, structured="llguidance", speculate=8)
        .complete(request)
    )
    off = (
        await FakeLlama(reply=reply)
        .backend(n_ctx=1024, n_seq_max=2, structured="llguidance")
        .complete(request)
    )
    assert on.text == off.text == reply
    assert on.usage.completion_tokens == off.usage.completion_tokens
    assert on.usage.forced_tokens == off.usage.forced_tokens > 0
    assert on.usage.drafted_tokens >= on.usage.accepted_tokens > len(document) // 2
