"""Priorities on the real engine: prefix groups admitted together, deadlines free sequences."""

from __future__ import annotations

import asyncio

import pytest

from plait import ChatRequest
from plait.backends import LocalBackend
from plait.backends.local._engine import Job, JobEnd
from plait.backends.local._sampling import SamplingParams
from plait.backends.routing import CostLedger, Price, RuleRouter
from plait.errors import BudgetExceeded

pytestmark = pytest.mark.local_model

BRIEF = (
    "You are one agent of a planning team. Shared context: the project ships on Friday; "
    "the budget is 40 thousand euros; Ana owns testing, Bo owns the release notes. " * 3
)


def ask(question: str, system: str, max_tokens: int = 2, priority: int = 0) -> ChatRequest:
    return ChatRequest.from_prompt(
        question, system=system, max_tokens=max_tokens, temperature=0.0, priority=priority
    )


async def test_waiting_requests_that_share_a_brief_are_admitted_together():
    # Two sequences, five requests at once: two share the brief, three do not. In
    # arrival order the second brief request would wait behind the others, whose
    # sequences evict the first's cached brief; admitted together, it forks it.
    backend = LocalBackend(n_ctx=1024, n_seq_max=2)
    model = backend.load()
    loop = asyncio.get_running_loop()
    requests = [
        ask("Who owns testing?", BRIEF),
        ask("Say one.", "You are a counter. " * 8),
        ask("Say two.", "You are a speaker. " * 8),
        ask("Say three.", "You are a singer. " * 8),
        ask("When does it ship?", BRIEF),
    ]
    ends: list[asyncio.Future[JobEnd]] = [loop.create_future() for _ in requests]

    def job(request: ChatRequest, end: asyncio.Future[JobEnd]) -> Job:
        return Job(
            prompt=model.render(list(request.messages)),
            sampling=SamplingParams(temperature=0.0),
            max_tokens=2,
            on_token=lambda _: True,
            on_done=lambda o: loop.call_soon_threadsafe(end.set_result, o),
        )

    jobs = [job(r, e) for r, e in zip(requests, ends, strict=True)]

    def submit_all() -> None:  # on the engine thread: one step sees all five waiting
        for j in jobs:
            model.engine.submit(j)

    await backend.clear_cache()
    await asyncio.to_thread(model.engine.call, submit_all)
    outcomes = await asyncio.wait_for(asyncio.gather(*ends), timeout=300)
    assert all(o.error is None for o in outcomes)
    first, last = outcomes[0].stats, outcomes[4].stats
    assert first.reused_tokens < 10
    assert last.reused_tokens > 100  # the brief came from the first, not prefilled again
    assert last.prefilled_tokens < 20


async def test_a_deadline_frees_a_high_priority_sequence_for_the_one_waiting():
    backend = LocalBackend(n_ctx=1024, n_seq_max=1)  # one sequence: the other needs it back
    story = ChatRequest.from_prompt(
        "Tell a very long story.", max_tokens=400, temperature=0.0, priority=5
    )
    waiting = ask("Who owns testing?", BRIEF, max_tokens=4, priority=0)
    await backend.complete(ask("Say hi.", "Be brief.", max_tokens=1))  # loaded and warm

    running = asyncio.Event()

    async def with_deadline() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(3.0):
                async for _ in backend.stream(story):
                    running.set()

    # The story holds the one sequence before the other request arrives; had the
    # other come first, the story's cut would be recorded after both returned.
    cut_story = asyncio.create_task(with_deadline())
    await asyncio.wait_for(running.wait(), timeout=300)
    answer = await asyncio.wait_for(backend.complete(waiting), timeout=300)
    await cut_story
    assert answer.usage.completion_tokens > 0
    cut = [r for r in backend.stats().recent if r.priority == 5]
    assert cut and cut[-1].decode_tokens < 400  # stopped at the deadline, not at its end


async def test_a_budget_refusal_never_takes_a_sequence():
    backend = LocalBackend(n_ctx=1024, n_seq_max=1)
    ledger = CostLedger(
        prices={backend.name: Price(prompt_per_1k=1.0, completion_per_1k=1.0)}, budget=0.001
    )
    router = RuleRouter([], default=backend, ledger=ledger)
    before = backend.stats().requests
    with pytest.raises(BudgetExceeded):
        await router.complete(ask("Who owns testing?", BRIEF, max_tokens=64, priority=3))
    assert backend.stats().requests == before  # refused before the engine saw it
    answer = await backend.complete(ask("Who owns testing?", BRIEF, max_tokens=4))
    assert answer.usage.completion_tokens > 0  # the only sequence was free
