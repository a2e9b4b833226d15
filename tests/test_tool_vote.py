"""Self-consistency for tool calls: k candidates, canonicalised, voted on, in the trace."""

from __future__ import annotations

import io
import json
import textwrap
from typing import Any

import pytest

from plait import ToolSpec, tracing
from plait.agents import Agent, ToolVote
from plait.agents._tool_vote import (
    SAMPLE_TEMPERATURE,
    canonical_calls,
    grounding_score,
    resolve_tool_sampling,
    vote_calls,
)
from plait.backends.testing import FunctionBackend, ScriptedBackend
from plait.cli.repl import Shell, default_session
from plait.errors import BackendError, ConfigError, ModelOutputError, WorkflowValidationError
from plait.graphs import LLMCompiler, load_workflow, tool_runner
from plait.messages import ToolCall
from plait.tools import tool

ran: list[dict[str, Any]] = []


@tool
def get_weather(city: str, unit: str = "celsius", days: int = 1) -> str:
    """Weather forecast for a city.

    Args:
        city: the city name.
        unit: celsius or fahrenheit.
        days: forecast days.
    """
    ran.append({"city": city, "unit": unit, "days": days})
    return f"sunny in {city}"


TOOLS = {"get_weather": get_weather.parameters}


def weather(**arguments: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
    return (("get_weather", arguments),)


def test_canonical_calls_apply_defaults_and_normalise_numbers_and_strings() -> None:
    same = [
        weather(city="Paris"),
        weather(city=" paris ", unit="celsius"),
        weather(city="PARIS.", days=1.0),
    ]
    assert len({canonical_calls(c, TOOLS) for c in same}) == 1
    assert canonical_calls(weather(city="Paris", days=2), TOOLS) != canonical_calls(
        weather(city="Paris"), TOOLS
    )
    assert canonical_calls(weather(city="Lyon"), TOOLS) != canonical_calls(same[0], TOOLS)


def test_parallel_calls_compare_in_any_order() -> None:
    one = (("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome"}))
    assert canonical_calls(one, TOOLS) == canonical_calls(tuple(reversed(one)), TOOLS)


def test_grounding_scores_what_the_request_states() -> None:
    request = "What is the weather in New York for 3 days?"
    assert grounding_score(weather(city="New York", days=3), request) == 1.0
    assert grounding_score(weather(city="Boston", days=3), request) == 0.5
    assert grounding_score(weather(city="York City"), request) == 0.5  # one word of two
    assert grounding_score("it is sunny", request) == 0.0


def test_a_majority_wins_and_its_best_grounded_member_runs() -> None:
    decided = vote_calls(
        [weather(city="Lyon"), weather(city="paris"), weather(city="Paris")],
        "Weather in Paris?",
        TOOLS,
    )
    assert decided is not None
    assert (decided.votes, decided.reason, decided.agreement) == (2, "majority", 0.6667)
    assert decided.winner == 1  # "paris" and "Paris" ground equally: the earlier runs


def test_a_tie_is_broken_by_grounding_then_by_order() -> None:
    request = "Forecast for Lisbon, 4 days"
    decided = vote_calls(
        [weather(city="Porto", days=4), weather(city="Lisbon", days=4)], request, TOOLS
    )
    assert decided is not None and (decided.winner, decided.reason) == (1, "grounding")
    decided = vote_calls([weather(city="Porto"), weather(city="Faro")], request, TOOLS)
    assert decided is not None and (decided.winner, decided.reason) == (0, "first")


def test_failed_candidates_drop_out_and_all_failed_is_none() -> None:
    decided = vote_calls([None, weather(city="Oslo"), None], "Oslo weather", TOOLS)
    assert decided is not None
    assert (decided.winner, decided.reason, decided.candidates[0]) == (1, "only", "")
    assert vote_calls([None, None], "Oslo weather", TOOLS) is None


def test_every_candidate_agreeing_is_unanimous() -> None:
    decided = vote_calls([weather(city="Oslo")] * 3, "Oslo weather", TOOLS)
    assert decided is not None and (decided.reason, decided.agreement) == ("unanimous", 1.0)


def test_the_default_is_one_candidate_with_native_tool_calls() -> None:
    native = ScriptedBackend([])
    assert resolve_tool_sampling(None, native) == 1
    assert resolve_tool_sampling(4, native) == 4
    with pytest.raises(ConfigError, match="tool_sampling"):
        Agent("a", "Help.", native, tool_sampling=0)


def _agent(backend: Any, k: int) -> Agent[str]:
    return Agent(
        "helper",
        "Help.",
        backend,
        tools=[get_weather],
        tool_choice="required",
        tool_selection="model",
        max_tool_rounds=1,
        tool_sampling=k,
        temperature=0.0,
    )


async def test_an_agent_draws_k_candidates_and_runs_the_majority_call(tmp_path: Any) -> None:
    ran.clear()
    backend = ScriptedBackend(
        [
            ToolCall(name="get_weather", arguments={"city": "Lyon"}),
            ToolCall(name="get_weather", arguments={"city": "Paris"}),
            ToolCall(name="get_weather", arguments={"city": "paris", "unit": "celsius"}),
            "It is sunny in Paris.",
        ]
    )
    with tracing.record_run(tmp_path, "vote"):
        result = await _agent(backend, 3).arun("What is the weather in Paris?")
    assert ran == [{"city": "Paris", "unit": "celsius", "days": 1}]
    first, *_ = result.trace.turns
    assert first.vote is not None
    assert (first.vote.k, first.vote.votes, first.vote.winner) == (3, 2, 1)
    assert json.loads(first.tool_calls[0].arguments) == {"city": "Paris"}
    # Candidate 0 is the turn's own request; the others are sampled, each its own seed.
    candidates = backend.requests[:3]
    assert candidates[0].temperature == 0.0
    assert {r.temperature for r in candidates[1:]} == {SAMPLE_TEMPERATURE}
    assert len({r.seed for r in candidates}) == 3
    # Every candidate's tokens count.
    assert first.usage.completion_tokens == 3
    chat = next(
        r for r in tracing.read_trace(tmp_path / "trace.jsonl") if r["name"].startswith("chat")
    )
    assert chat["attributes"]["plait.tool_sampling.k"] == 3
    assert chat["attributes"]["plait.tool_sampling.reason"] == "majority"
    events = [e for e in chat["events"] if e["name"] == "plait.tool_sampling.candidate"]
    assert [e["attributes"]["won"] for e in events] == [False, True, False]


async def test_a_candidate_cut_off_drops_out_and_one_turn_is_recorded() -> None:
    ran.clear()
    replies = iter(
        [
            ModelOutputError("the model's tool-call reply was cut off by max_tokens", raw="{"),
            ToolCall(name="get_weather", arguments={"city": "Oslo"}),
            "Done.",
        ]
    )
    backend = FunctionBackend(lambda request: next(replies))
    result = await _agent(backend, 2).arun("Weather in Oslo")
    assert [c["city"] for c in ran] == ["Oslo"]
    first = result.trace.turns[0]
    assert first.vote is not None and first.vote.reason == "only"
    assert len(result.trace.turns) == 2


async def test_one_candidate_sends_one_request_and_records_no_vote() -> None:
    backend = ScriptedBackend([ToolCall(name="get_weather", arguments={"city": "Oslo"}), "ok"])
    result = await _agent(backend, 1).arun("Weather in Oslo")
    assert result.trace.turns[0].vote is None and len(backend.requests) == 2


def test_the_vote_record_is_plain_data() -> None:
    decided = vote_calls([weather(city="Oslo")], "Oslo", TOOLS)
    assert decided is not None and ToolVote.model_validate(decided.model_dump()) == decided


ADD = ToolSpec(
    name="add",
    description="Add two numbers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
)


def _plan(a: float, b: float) -> str:
    return json.dumps({"tasks": [{"tool": "add", "args": {"a": a, "b": b}}]})


async def test_the_compiler_votes_among_k_json_plans(tmp_path: Any) -> None:
    added: list[tuple[float, float]] = []

    def add(a: float, b: float) -> float:
        added.append((a, b))
        return a + b

    planner = ScriptedBackend(
        [
            _plan(17, 32),
            "not a plan",  # drops out
            _plan(17, 23),
            _plan(17.0, 23),
            json.dumps({"action": "finish", "answer": "40"}),
        ]
    )
    compiler = LLMCompiler(planner, [ADD], tool_runner({"add": add}), tool_sampling=4)
    with tracing.record_run(tmp_path, "plans"):
        result = await compiler.arun("What is 17 + 23?")
    assert added == [(17, 23)]
    assert result.answer == "40" and result.usage.total_tokens > 0
    plan_span = next(
        r for r in tracing.read_trace(tmp_path / "trace.jsonl") if r["name"] == "plait.plan"
    )
    assert plan_span["attributes"]["plait.tool_sampling.votes"] == 2
    assert plan_span["attributes"]["plait.tool_sampling.winner"] == 2


def test_yaml_agents_and_planners_take_tool_sampling(tmp_path: Any) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(
            """
            backends:
              small: {kind: local}
            tools:
              calc: {builtin: calculator}
            agents:
              voter: {instructions: Count., backend: small, tools: [calc], tool_sampling: 3}
              plain: {instructions: Count., backend: small, tools: [calc]}
            workflow: {kind: planner, question: go, tools: [calc], tool_sampling: 2}
            """
        ).lstrip()
    )
    workflow = load_workflow(path)
    assert workflow.agents["voter"].tool_sampling == 3
    assert workflow.agents["plain"].tool_sampling is None
    path.write_text(path.read_text().replace("tool_sampling: 3", "tool_sampling: 0"))
    with pytest.raises(WorkflowValidationError, match=r"agents.voter.tool_sampling"):
        load_workflow(path)


async def test_the_repl_sets_tool_sampling_and_trace_shows_the_vote() -> None:
    backend = ScriptedBackend(
        [
            ToolCall(name="calculator", arguments={"expression": "17 * 23"}),
            ToolCall(name="calculator", arguments={"expression": "17*23"}),
            ToolCall(name="calculator", arguments={"expression": "17 + 23"}),
            "It is 391.",
        ]
    )
    out = io.StringIO()
    shell = Shell(default_session(backend), out)
    assert await shell.handle("/sampling")
    assert "draws 1 candidate(s) per tool call (the backend's default)" in out.getvalue()
    assert await shell.handle("/sampling 3")
    assert await shell.handle("What is 17 * 23?")
    assert await shell.handle("/trace")
    text = out.getvalue()
    assert "assistant draws 3 candidate(s) per tool call" in text
    assert "vote: 2 of 3 agree (67%), candidate 0 won by majority" in text
    assert '* 0: [["calculator", {"expression": "17*23"}]]' in text
    assert await shell.handle("/sampling 0")
    assert "tool_sampling must be a whole number" in out.getvalue()


async def test_a_backend_error_in_one_candidate_fails_the_turn_with_that_error() -> None:
    seen: list[int] = []

    async def reply(request: Any) -> Any:
        seen.append(request.seed or 0)
        if request.seed == 1:
            raise BackendError("the server went away")
        return ToolCall(name="get_weather", arguments={"city": "Oslo"})

    with pytest.raises(BackendError, match="went away"):
        await _agent(FunctionBackend(reply), 3).arun("Weather in Oslo")
    assert sorted(seen) == [0, 1, 2]
