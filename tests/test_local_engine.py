"""The local engine on the real model: prefix reuse, forks, eviction, pins, concurrency."""

import asyncio
import threading

import pytest

from plait import ChatRequest
from plait.backends import LocalBackend
from plait.backends.local._engine import Job, JobEnd
from plait.backends.local._sampling import SamplingParams
from plait.errors import BackendError, ConfigError

pytestmark = pytest.mark.local_model

TEAM = (
    "You are one agent of a planning team. Shared context: the project ships on Friday; "
    "the budget is 40 thousand euros; Ana owns testing, Bo owns the release notes. " * 3
)
QUESTIONS = ("Who owns testing?", "When does it ship?", "What is the budget?")


def ask(question: str, system: str = TEAM, max_tokens: int = 12) -> ChatRequest:
    return ChatRequest.from_prompt(question, system=system, max_tokens=max_tokens, temperature=0.0)


async def test_second_agent_prefills_only_its_own_tokens():
    backend = LocalBackend(n_ctx=1024)
    await backend.clear_cache()
    first = await backend.complete(ask(QUESTIONS[0]))
    before = backend.stats()
    second = await backend.complete(ask(QUESTIONS[1]))
    after = backend.stats()
    mine = after.recent[-1]
    assert first.usage.cached_prompt_tokens < 10  # only the template header, if anything
    assert mine.reused_tokens == second.usage.cached_prompt_tokens
    assert mine.reused_tokens > 100
    assert mine.prefilled_tokens == mine.prompt_tokens - mine.reused_tokens < 20
    assert after.prefilled_tokens - before.prefilled_tokens == mine.prefilled_tokens


async def test_concurrent_agents_fork_one_prefix_prefilled_once():
    backend = LocalBackend(n_ctx=1536)
    results = await asyncio.gather(*(backend.complete(ask(q)) for q in QUESTIONS))
    stats = backend.stats()
    recent = stats.recent[-3:]
    prompt = results[0].usage.prompt_tokens
    assert sorted(r.reused_tokens > 100 for r in recent) == [False, True, True]
    # The shared prefix was evaluated once: far fewer prefilled tokens than 3 prompts.
    assert sum(r.prefilled_tokens for r in recent) < prompt + 2 * 20
    assert stats.mean_batch_sequences > 1.0  # decode steps of the three ran together
    assert all(r.usage.completion_tokens > 0 for r in results)


async def first_step_logits(
    backend: LocalBackend, questions: tuple[str, ...], *, reuse: bool, together: bool
) -> list[tuple[list[float], int]]:
    """Next-token logits of each question's first generated token, and its reused tokens."""
    model = backend.load()
    loop = asyncio.get_running_loop()

    async def one(question: str) -> tuple[list[float], int]:
        rows: list[list[float]] = []
        done: asyncio.Future[JobEnd] = loop.create_future()
        model.engine.submit(
            Job(
                prompt=model.render(list(ask(question).messages)),
                sampling=SamplingParams(temperature=0.0),
                max_tokens=1,
                on_token=lambda _: True,
                on_done=lambda o: loop.call_soon_threadsafe(done.set_result, o),
                reuse=reuse,
                on_logits=rows.append,
            )
        )
        outcome = await done
        return rows[0], outcome.stats.reused_tokens

    if together:
        return list(await asyncio.gather(*(one(q) for q in questions)))
    return [await one(q) for q in questions]


async def test_sharing_on_and_off_agree_on_next_token_logits():
    # Exact equality is not possible: llama.cpp's attention result depends on where
    # a sequence's cells sit in the shared cache (forked prefixes and other
    # sequences' cells in between change the summation order), which moves logits
    # by up to ~1 here. The stated tolerance: same greedy token, |logit diff| <= 1.5.
    backend = LocalBackend(n_ctx=1280)
    shared = await first_step_logits(backend, QUESTIONS, reuse=True, together=True)
    alone = await first_step_logits(backend, QUESTIONS, reuse=False, together=False)
    assert sorted(reused > 100 for _, reused in shared) == [False, True, True]
    assert [reused for _, reused in alone] == [0, 0, 0]
    for (on, _), (off, _) in zip(shared, alone, strict=True):
        assert on.index(max(on)) == off.index(max(off))
        assert max(abs(a - b) for a, b in zip(on, off, strict=True)) <= 1.5


async def test_small_cache_evicts_least_recently_used_prefixes():
    backend = LocalBackend(n_ctx=384, n_seq_max=2)
    for i in range(4):
        done = await backend.complete(ask(f"Say the number {i}.", system=f"Agent {i}. " * 30))
        assert done.usage.completion_tokens > 0
    assert backend.stats().evictions >= 2


async def test_pinned_prefix_survives_eviction_until_released():
    backend = LocalBackend(n_ctx=640, n_seq_max=2)
    pin = await backend.pin(TEAM)
    assert pin.tokens > 100
    for i in range(3):  # only one sequence is free: these evict each other, not the pin
        await backend.complete(ask("Say hi.", system=f"Other agent {i}. " * 20))
    hit = await backend.complete(ask(QUESTIONS[0]))
    assert hit.usage.cached_prompt_tokens >= pin.tokens - 5
    assert await backend.unpin(pin) is True
    assert await backend.unpin(pin) is False
    for i in range(2):
        await backend.complete(ask("Say hi.", system=f"Evictor {i}. " * 20))
    miss = await backend.complete(ask(QUESTIONS[0]))
    assert miss.usage.cached_prompt_tokens < 10


async def test_pin_rejects_bad_ttl():
    with pytest.raises(ConfigError, match="ttl_s"):
        await LocalBackend(n_ctx=640, n_seq_max=2).pin(TEAM, ttl_s=0)


async def test_cancelling_one_stream_does_not_disturb_the_others():
    backend = LocalBackend(n_ctx=1152)
    story = ChatRequest.from_prompt("Tell a long story.", max_tokens=200, temperature=0.0)

    async def abandon() -> None:
        stream = backend.stream(story)
        async for chunk in stream:
            if chunk.delta:
                break
        await stream.aclose()

    others = [backend.complete(ask(q)) for q in QUESTIONS[:2]]
    results = await asyncio.wait_for(asyncio.gather(abandon(), *others), timeout=60)
    assert all(r.usage.completion_tokens > 0 for r in results[1:])
    cancelled = [
        r for r in backend.stats().recent if r.prompt_tokens != results[1].usage.prompt_tokens
    ]
    assert cancelled and cancelled[-1].decode_tokens < 200


def test_requests_from_threads_are_served_together():
    backend = LocalBackend(n_ctx=1024)
    texts: dict[int, str] = {}

    def worker(i: int) -> None:
        texts[i] = backend.complete_sync(ask(QUESTIONS[i])).text

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(texts) == [0, 1, 2] and all(texts.values())


def test_bad_engine_settings_are_config_errors():
    with pytest.raises(ConfigError, match="type_k"):
        LocalBackend(type_k="q3_weird")
    with pytest.raises(ConfigError, match="n_seq_max"):
        LocalBackend(n_seq_max=1000)


async def test_quantized_kv_cache_answers():
    backend = LocalBackend(n_ctx=896, type_k="q8_0", type_v="q8_0")
    done = await backend.complete(
        ChatRequest.from_prompt("What color is the sky?", max_tokens=12, temperature=0.0)
    )
    assert "blue" in done.text.lower()


async def test_full_kv_cells_evict_idle_prefixes_before_failing():
    backend = LocalBackend(n_ctx=320, n_seq_max=8)
    for i in range(4):  # ~130 tokens each: the third cannot fit beside the first two
        done = await backend.complete(ask(f"Say {i}.", system=f"Context {i}. " * 30, max_tokens=4))
        assert done.usage.completion_tokens > 0
    assert backend.stats().evictions >= 1


async def test_cache_full_of_running_requests_fails_the_newest_with_a_clear_error():
    backend = LocalBackend(n_ctx=256, n_seq_max=4)
    story = ChatRequest.from_prompt("Tell a very long story.", max_tokens=200, temperature=0.0)
    other = ChatRequest.from_prompt(
        "Tell another very long story.", max_tokens=200, temperature=0.0
    )
    results = await asyncio.gather(
        backend.complete(story), backend.complete(other), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], BackendError)
    assert "is full" in str(errors[0])
    # The other one (whichever was submitted first) keeps its cells and finishes.
    finished = [r for r in results if not isinstance(r, BaseException)]
    assert len(finished) == 1 and finished[0].usage.completion_tokens > 0
