"""The agent runtime against the real embedded model (short)."""

import pytest
from pydantic import BaseModel

from plait.agents import Agent
from plait.tools import calculator

pytestmark = pytest.mark.local_model


class Answer(BaseModel):
    result: float


async def test_default_model_answers_by_calling_the_calculator(local_backend):
    agent = Agent(
        "math",
        "You answer with the help of tools.",
        local_backend,
        tools=[calculator],
        output_type=Answer,
        tool_choice="calculator",
        max_tool_rounds=1,
        temperature=0.0,
    )
    result = await agent.arun("How much is 345 + 678?")
    assert result.ok
    (call,) = result.trace.tool_calls
    assert call.name == "calculator" and call.error is None and call.result == "1023"
    assert result.output == Answer(result=1023)
    assert [t.role for t in result.trace.turns] == ["agent", "agent"]
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
