"""Routers: rules, thresholds and calibration, fallback with circuit breaker, budgets."""

from __future__ import annotations

import asyncio

import pytest

from plait import ChatRequest
from plait.backends.routing import (
    ComplexityScorer,
    CostLedger,
    FallbackRouter,
    ModelScorer,
    MultiRoundRouter,
    Price,
    Rule,
    RuleRouter,
    ThresholdRouter,
    backend_price,
    request_features,
)
from plait.backends.testing import FunctionBackend, ScriptedBackend
from plait.completions import Completion, Usage
from plait.errors import (
    BackendHTTPError,
    BackendTimeout,
    BackendUnavailable,
    BudgetExceeded,
    ConfigError,
    ModelOutputError,
)
from plait.retry import is_transient


def echo(name: str) -> FunctionBackend:
    return FunctionBackend(lambda r: f"{name} answered", name=name)


def ask(text: str, **fields) -> ChatRequest:
    return ChatRequest.from_prompt(text, **fields)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- rules -------------------------------------------------------------------------------


async def test_first_matching_rule_wins_and_the_decision_says_why():
    planner, coder, default = echo("planner-model"), echo("coder-model"), echo("default")
    router = RuleRouter(
        [
            Rule(planner, agent="plan*", name="planning"),
            Rule(coder, pattern=r"\bpython\b", tags=("code",), name="code"),
        ],
        default,
    )
    a = await router.complete(ask("make a plan", agent="planner"))
    b = await router.complete(ask("write python please", tags=("code", "x")))
    c = await router.complete(ask("write python please"))  # lacks the tag
    assert (a.text, b.text, c.text) == (
        "planner-model answered",
        "coder-model answered",
        "default answered",
    )
    first, second, third = router.decisions
    assert first.backend == "planner-model" and "agent 'planner' matches 'plan*'" in first.reason
    assert "rule code" in second.reason and "/\\bpython\\b/" in second.reason
    assert third.reason.startswith("no rule matched") and third.outcome == "ok"
    assert router.last_decision is third


async def test_rule_predicate_on_request_features():
    tools_model = echo("tools")
    router = RuleRouter(
        [Rule(tools_model, when=lambda r: request_features(r).numbers >= 3)], echo("small")
    )
    assert (await router.complete(ask("add 1, 2 and 3"))).text == "tools answered"
    assert (await router.complete(ask("hello"))).text == "small answered"


def test_rules_reject_bad_patterns_and_empty_conditions():
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        Rule(echo("x"), pattern="(")
    with pytest.raises(ConfigError, match="no condition"):
        Rule(echo("x"))


# --- complexity and threshold ----------------------------------------------------------


def test_complexity_scorer_ranks_multi_step_arithmetic_above_chit_chat():
    scorer = ComplexityScorer()
    easy = scorer.score_sync(ask("Hi, how are you?"))
    medium = scorer.score_sync(ask("What is 12 + 7?"))
    hard = scorer.score_sync(
        ask(
            "A tank holds 120 liters. It loses 15 percent, then 8.5 liters each hour for 3 hours."
            " How many liters remain?"
        )
    )
    assert 0.0 < easy < medium < hard < 1.0


async def test_threshold_router_sends_hard_requests_to_the_strong_backend():
    router = ThresholdRouter(echo("cheap"), echo("strong"), threshold=0.5)
    hard = ask("Convert 3.5 km to m, then add 250 m and divide by 5. Explain each step.")
    assert (await router.complete(ask("hello"))).text == "cheap answered"
    assert (await router.complete(hard)).text == "strong answered"
    low, high = router.decisions
    assert low.score is not None and low.score < 0.5 and low.threshold == 0.5
    assert high.score is not None and high.score >= 0.5 and "strong" in high.reason


async def test_calibrate_hits_the_target_strong_share():
    router = ThresholdRouter(echo("cheap"), echo("strong"))
    samples = [ask("word " * n + "1 + 2" * (n % 4)) for n in range(1, 41)]
    for share in (0.0, 0.25, 0.5, 1.0):
        result = await router.calibrate(samples, share)
        assert result.strong_share == pytest.approx(share, abs=0.05)
        routed = [(await router.choose(s)).backend.name for s in samples]
        assert routed.count("strong") / len(samples) == pytest.approx(result.strong_share)


async def test_calibrate_rejects_bad_input():
    router = ThresholdRouter(echo("cheap"), echo("strong"))
    with pytest.raises(ConfigError, match="at least one sample"):
        await router.calibrate([], 0.5)
    with pytest.raises(ConfigError, match="strong_share"):
        await router.calibrate([ask("x")], 1.5)
    with pytest.raises(ConfigError, match="threshold"):
        ThresholdRouter(echo("a"), echo("b"), threshold=2)


async def test_model_scorer_reads_the_judges_rating_and_falls_back_on_garbage():
    judge = ScriptedBackend(['{"difficulty": 5}', "not json"])
    scorer = ModelScorer(judge)
    assert await scorer.score(ask("prove it")) == 1.0
    fallback = await scorer.score(ask("hi"))
    assert fallback == ComplexityScorer().score_sync(ask("hi"))
    assert judge.requests[0].response_schema is not None


# --- budgets ---------------------------------------------------------------------------


def priced(name: str, prompt: int, completion: int) -> FunctionBackend:
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    return FunctionBackend(lambda r: Completion(text=name, usage=usage, model=name), name=name)


async def test_ledger_accounts_cost_per_agent_and_backend_with_cached_discount():
    ledger = CostLedger(
        {"strong": Price(prompt_per_1k=1.0, completion_per_1k=2.0, cached_prompt_per_1k=0.5)}
    )
    strong = FunctionBackend(
        lambda r: Completion(
            text="ok",
            usage=Usage(prompt_tokens=1000, cached_prompt_tokens=400, completion_tokens=500),
        ),
        name="strong",
    )
    router = RuleRouter([Rule(strong, agent="writer")], echo("local"), ledger=ledger)
    await router.complete(ask("x", agent="writer", max_tokens=500))
    await router.complete(ask("y", agent="reader", max_tokens=10))
    report = ledger.report()
    # 600 * 1.0 + 400 * 0.5 + 500 * 2.0 per 1000 tokens
    assert report.total_cost == pytest.approx(1.8)
    assert report.cost_by_agent == {"writer": pytest.approx(1.8), "reader": 0.0}
    assert report.calls == 2 and report.usage_by_backend["strong"].cached_prompt_tokens == 400
    assert router.decisions[0].cost == pytest.approx(1.8) and router.decisions[1].cost == 0.0


def test_one_pricing_rule_listed_price_then_the_backends_own_then_free():
    listed, own = Price(prompt_per_1k=1.0), Price(completion_per_1k=100.0)
    backend = echo("api")
    backend.price = own  # type: ignore[attr-defined]
    assert backend_price(backend, {"api": listed}) is listed
    assert backend_price(backend, {"other": listed}) is own
    assert backend_price("api", None) == Price() and backend_price(echo("x")) == Price()
    # A name has no own price; a ledger looks up names.
    assert CostLedger({"api": listed}).price("api") is listed
    assert CostLedger().price("api") == Price()


def test_a_cache_hit_saves_what_its_stored_answer_cost():
    price = Price(prompt_per_1k=1.0, completion_per_1k=2.0)
    first = Usage(prompt_tokens=1000, completion_tokens=500)
    assert price.saved(Usage(cache_hits=1, cache_saved=first)) == pytest.approx(price.cost(first))
    assert price.saved(first) == 0.0  # not a hit: nothing saved


def test_the_agents_own_pricing_methods_are_deprecated():
    from plait.agents import Agent

    price = Price(prompt_per_1k=1.0)
    agent = Agent("a", "x", echo("api"), prices={"api": price})
    with pytest.warns(DeprecationWarning, match="backend_price"):
        assert agent.price_of(echo("api")) is price
    with pytest.warns(DeprecationWarning, match="backend_price"):
        assert agent.cost_of(echo("api"), Usage(prompt_tokens=1000)) == pytest.approx(1.0)


async def test_budget_refuses_a_call_before_it_is_sent():
    strong = priced("strong", 100, 100)
    ledger = CostLedger({"strong": Price(prompt_per_1k=10, completion_per_1k=10)}, budget=3.0)
    router = RuleRouter([Rule(strong, tags=("hard",))], echo("local"), ledger=ledger)
    await router.complete(ask("hard one", tags=("hard",), max_tokens=100))  # costs 2.0
    with pytest.raises(BudgetExceeded, match="run budget of 3"):
        await router.complete(ask("hard two", tags=("hard",), max_tokens=100))
    assert len(strong.requests) == 1  # the refused call never reached the backend
    assert router.last_decision is not None and router.last_decision.outcome == "over_budget"
    assert ledger.total_cost == pytest.approx(2.0)
    # A free (local) call still goes through.
    assert (await router.complete(ask("easy", max_tokens=100))).text == "local answered"


async def test_agent_budget_caps_one_agent_only():
    strong = priced("strong", 10, 10)
    ledger = CostLedger({"strong": Price(completion_per_1k=100)}, agent_budgets={"critic": 1.5})
    router = RuleRouter([Rule(strong, tags=("s",))], echo("local"), ledger=ledger)
    await router.complete(ask("a", agent="critic", tags=("s",), max_tokens=10))  # 1.0
    with pytest.raises(BudgetExceeded, match="agent 'critic'"):
        await router.complete(ask("b", agent="critic", tags=("s",), max_tokens=10))
    await router.complete(ask("c", agent="writer", tags=("s",), max_tokens=10))


async def test_threshold_router_downgrades_to_cheap_when_strong_would_pass_the_budget():
    ledger = CostLedger({"strong": Price(completion_per_1k=1000)}, budget=1.0)
    router = ThresholdRouter(echo("cheap"), priced("strong", 1, 1), threshold=0.0, ledger=ledger)
    completion = await router.complete(ask("anything", max_tokens=50))
    assert completion.text == "cheap answered"
    decision = router.last_decision
    assert decision is not None and decision.backend == "cheap"
    assert "downgraded" in decision.reason and decision.skipped[0].startswith("strong: over budget")


async def test_failed_call_releases_its_reservation():
    failing = FunctionBackend(lambda r: BackendTimeout("slow"), name="strong")
    ledger = CostLedger({"strong": Price(completion_per_1k=1000)}, budget=60.0)
    router = RuleRouter([Rule(failing, tags=("s",))], echo("local"), ledger=ledger)
    for _ in range(3):  # each reserves 50; without release the third would be refused
        with pytest.raises(BackendTimeout):
            await router.complete(ask("a", tags=("s",), max_tokens=50))
    assert router.last_decision is not None and router.last_decision.outcome == "error"
    assert ledger.total_cost == 0.0


# --- fallback and circuit breaker -------------------------------------------------------


async def test_fallback_moves_on_after_transient_errors_and_records_them():
    primary = ScriptedBackend([BackendHTTPError(503, "overloaded")], name="primary")
    router = FallbackRouter([primary, echo("backup")])
    assert (await router.complete(ask("hi"))).text == "backup answered"
    decision = router.last_decision
    assert decision is not None and decision.backend == "backup"
    assert decision.skipped == ("primary: BackendHTTPError: HTTP 503: overloaded",)
    assert "fallback #1" in decision.reason


async def test_client_errors_are_not_fallen_back_on():
    primary = ScriptedBackend([BackendHTTPError(400, "bad request")], name="primary")
    backup = echo("backup")
    router = FallbackRouter([primary, backup])
    with pytest.raises(BackendHTTPError, match="400"):
        await router.complete(ask("hi"))
    assert backup.requests == []


async def test_usage_errors_are_never_fallen_back_on_and_output_errors_are_not_transient():
    # Even a fallback_on that takes everything: a misconfigured backend must not be
    # skipped silently (the chain would hide the mistake behind the backup).
    primary = ScriptedBackend([ConfigError("primary: unknown model 'gtp-4'")], name="primary")
    backup = echo("backup")
    router = FallbackRouter([primary, backup], fallback_on=lambda e: True)
    with pytest.raises(ConfigError, match="gtp-4"):
        await router.complete(ask("hi"))
    assert backup.requests == [] and router.breaker(primary).failures == 0
    # The model's output was the problem, not the backend's service: no fallback.
    assert not is_transient(ModelOutputError("not JSON", raw="{"))
    assert is_transient(BackendTimeout("slow"))


async def test_a_cancelled_call_is_recorded_as_cancelled_not_as_an_error():
    asked = asyncio.Event()

    async def hangs(request: ChatRequest) -> str:
        asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    router = RuleRouter([], FunctionBackend(hangs, name="local"))
    call = asyncio.create_task(router.complete(ask("hi")))
    await asked.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    decision = router.last_decision
    assert decision is not None and decision.outcome == "cancelled" and decision.error is None


async def test_circuit_opens_after_failures_and_half_opens_after_cooldown():
    clock = Clock()
    calls = []

    def flaky(request):
        calls.append(clock.now)
        return BackendTimeout("down") if clock.now < 100 else "primary answered"

    primary = FunctionBackend(flaky, name="primary")
    router = FallbackRouter(
        [primary, echo("backup")], failure_threshold=2, cooldown_s=30, clock=clock
    )
    for _ in range(4):
        assert (await router.complete(ask("hi"))).text == "backup answered"
    assert len(calls) == 2  # after two failures the circuit skipped the primary
    assert "circuit open" in router.last_decision.skipped[0]
    clock.now = 31  # half-open: one trial, it fails, the circuit opens again
    await router.complete(ask("hi"))
    assert len(calls) == 3
    await router.complete(ask("hi"))
    assert len(calls) == 3
    clock.now = 100  # the primary has recovered: trial succeeds and closes the circuit
    assert (await router.complete(ask("hi"))).text == "primary answered"
    assert router.breaker(primary).failures == 0


async def test_all_backends_failing_is_a_clear_unavailable_error():
    router = FallbackRouter(
        [
            ScriptedBackend([BackendTimeout("t1")], name="a"),
            ScriptedBackend([BackendHTTPError(429, "slow down")], name="b"),
        ]
    )
    with pytest.raises(BackendUnavailable, match=r"no backend could serve.*a: .*t1.*b: .*429"):
        await router.complete(ask("hi"))
    assert router.last_decision is not None and router.last_decision.outcome == "error"


async def test_fallback_skips_backends_over_budget():
    ledger = CostLedger({"paid": Price(completion_per_1k=1000)}, budget=1.0)
    paid = echo("paid")
    router = FallbackRouter([paid, echo("local")], ledger=ledger)
    assert (await router.complete(ask("hi", max_tokens=10))).text == "local answered"
    assert paid.requests == [] and "over budget" in router.last_decision.skipped[0]


async def test_routers_nest_and_stream():
    inner = FallbackRouter([ScriptedBackend([BackendTimeout("x")], name="dead"), echo("live")])
    outer = ThresholdRouter(echo("cheap"), inner, threshold=0.0)
    chunks = [c async for c in outer.stream(ask("hi"))]
    assert "".join(c.delta for c in chunks[:-1]) == "live answered"
    assert outer.last_decision.backend == "fallback"
    assert inner.last_decision.backend == "live"


# --- multi-round ------------------------------------------------------------------------


async def test_multi_round_stops_when_a_majority_agrees():
    a, b, c = (
        ScriptedBackend(["Paris."], name="a"),
        ScriptedBackend(["paris"], name="b"),
        ScriptedBackend([], name="c"),
    )
    router = MultiRoundRouter([a, b, c], quorum=2)
    completion = await router.complete(ask("capital of France?"))
    assert completion.text == "Paris." and c.requests == []
    assert completion.usage.completion_tokens == 2  # one word from each of two backends


async def test_multi_round_adds_rounds_then_asks_the_judge_on_disagreement():
    a = ScriptedBackend(["4"], name="a")
    b = ScriptedBackend(["5"], name="b")
    c = ScriptedBackend(["6"], name="c")
    judge = ScriptedBackend(['{"best": 2}'], name="judge")
    router = MultiRoundRouter([a, b, c], quorum=2, judge=judge)
    completion = await router.complete(ask("2 + 2?"))
    assert completion.text == "5"
    assert len(c.requests) == 1 and "Answer 3:\n6" in judge.requests[0].messages[-1].content
    assert [d.backend for d in router.decisions] == ["a", "b", "c", "judge"]
