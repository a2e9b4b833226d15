"""Tool selection on the real offline embedder and the embedded model."""

import json

import pytest

from plait.agents import Agent, AgentLimits
from plait.memory import default_embedder
from plait.tools import ToolSelection, ToolSelector, calculator, tool


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: the city name.
    """
    return f"sunny in {city}"


@tool
def currency_convert(amount: float, source: str, target: str) -> str:
    """Convert an amount of money from one currency to another."""
    return f"{amount} {target}"


async def test_the_offline_embedder_ranks_the_obvious_tool_first():
    selector = ToolSelector.for_embedder(default_embedder())
    tools = [calculator, get_weather, currency_convert]
    selection = ToolSelection(policy="embedding")
    weather = await selector.decide("What's the weather like in Paris?", tools, selection)
    assert weather.scores[0].tool == "get_weather" and weather.fixed == "get_weather"
    assert weather.margin is not None and weather.margin >= selection.margin
    money = await selector.decide("How many yen are 20 euros?", tools, selection)
    assert money.scores[0].tool == "currency_convert"
    math = await selector.decide("Compute 17 * 23", tools, selection)
    assert math.scores[0].tool == "calculator"


@pytest.mark.local_model
async def test_the_embedded_model_calls_the_fixed_tool_with_its_argument(local_backend):
    agent = Agent(
        "helper",
        "Answer with the tools.",
        local_backend,
        tools=[calculator, get_weather, currency_convert],
        tool_choice="required",
        tool_selection="embedding",
        max_tool_rounds=1,
        temperature=0.0,
        limits=AgentLimits(max_steps=1, max_turn_tokens=96, timeout_s=None),
    )
    result = await agent.arun("What's the weather like in Paris?")
    first = result.trace.turns[0]
    assert first.selection is not None and first.selection.fixed == "get_weather"
    assert first.offered_tools == ("get_weather",)
    (call,) = first.tool_calls
    assert call.name == "get_weather"
    assert set(json.loads(call.arguments)) == {"city"}
