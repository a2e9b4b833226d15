"""Agent runtime, as scripted-backend transcripts."""

import asyncio
import json

import pytest
from pydantic import BaseModel

from plait.agents import (
    Agent,
    AgentLimits,
    Roles,
    RunFinished,
    TextDelta,
    ToolFinished,
    ToolStarted,
)
from plait.backends import Capabilities
from plait.backends.testing import FunctionBackend, ScriptedBackend, Step
from plait.completions import Completion, Usage
from plait.errors import ConfigError, ModelOutputError, ToolArgumentError
from plait.messages import SystemMessage, ToolCall, ToolMessage, UserMessage
from plait.tools import Permissions, ToolLimits, calculator, file_tools, tool


@tool
def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: the city name.
    """
    return {"Paris": "sunny, 21 C", "Oslo": "snow, -3 C"}[city]


@tool
async def nap(seconds: float) -> str:
    """Sleep a while."""
    await asyncio.sleep(seconds)
    return "rested"


class Forecast(BaseModel):
    city: str
    sunny: bool


def last_tool_messages(request):
    return [m for m in request.messages if isinstance(m, ToolMessage)]


def test_two_step_tool_use_ends_with_the_answer_and_a_trace():
    backend = ScriptedBackend(
        [
            Step(ToolCall(name="get_weather", arguments={"city": "Paris"}), expect="Paris"),
            Step(ToolCall(name="calculator", arguments={"expression": "21 * 9 / 5 + 32"})),
            Step("It is sunny and 69.8 F in Paris.", expect="69.8"),
        ]
    )
    agent = Agent(
        "forecaster", "Answer weather questions.", backend, tools=[get_weather, calculator]
    )
    result = agent.run("Weather in Paris, in Fahrenheit?")
    backend.assert_exhausted()
    assert result.ok and result.stop_reason == "done"
    assert result.output == result.text == "It is sunny and 69.8 F in Paris."
    trace = result.trace
    assert trace.steps == 3
    assert [(c.name, c.result) for c in trace.tool_calls] == [
        ("get_weather", "sunny, 21 C"),
        ("calculator", "69.8"),
    ]
    assert all(c.duration_s >= 0 and c.error is None for c in trace.tool_calls)
    assert trace.turns[0].offered_tools == ("get_weather", "calculator")
    assert trace.usage.total_tokens == sum(t.usage.total_tokens for t in trace.turns) > 0
    # The trace serialises (the REPL and tracing build on it).
    assert json.loads(trace.model_dump_json())["stop_reason"] == "done"
    # Tool results went back to the model, tied to their calls.
    (tool_message,) = last_tool_messages(backend.requests[1])
    assert tool_message.content == "sunny, 21 C"
    assert tool_message.tool_call_id == trace.turns[0].tool_calls[0].id
    assert backend.requests[0].agent == "forecaster"


def test_prompt_is_laid_out_shared_part_first():
    backend = ScriptedBackend(["ok"])
    agent = Agent("critic", "Criticise plans.", backend, shared_context="Team: travel agency.")
    agent.run("Review the plan.")
    system, user = backend.requests[0].messages
    assert isinstance(system, SystemMessage) and isinstance(user, UserMessage)
    assert system.content.startswith("Team: travel agency.")
    assert (
        system.content.index("Team")
        < system.content.index("critic")
        < system.content.index("Criticise")
    )
    assert user.content == "Review the plan."


def test_invalid_tool_arguments_go_back_to_the_model_and_get_repaired():
    backend = ScriptedBackend(
        [
            ToolCall(name="get_weather", arguments={"town": "Oslo"}),
            Step(
                ToolCall(name="get_weather", arguments={"city": "Oslo"}),
                expect="city: Field required",
            ),
            Step("Snow in Oslo.", expect="snow, -3 C"),
        ]
    )
    result = Agent("w", "Weather.", backend, tools=[get_weather]).run("Oslo?")
    assert result.output == "Snow in Oslo."
    assert [c.error for c in result.trace.tool_calls] == ["arguments", None]


def test_argument_retries_are_bounded():
    backend = ScriptedBackend([ToolCall(name="get_weather", arguments={"town": "Oslo"})] * 3)
    agent = Agent(
        "w", "Weather.", backend, tools=[get_weather], limits=AgentLimits(argument_retries=2)
    )
    with pytest.raises(ToolArgumentError, match="made 3 invalid tool calls; the limit is 2"):
        agent.run("Oslo?")


async def test_parallel_tool_calls_in_one_turn_run_concurrently():
    started: list[str] = []
    both_running = asyncio.Event()

    @tool
    async def lookup(key: str) -> str:
        """Look a key up."""
        started.append(key)
        if len(started) == 2:
            both_running.set()
        # Each call waits until the other has started: only concurrent calls finish.
        await asyncio.wait_for(both_running.wait(), 2)
        return key.upper()

    backend = ScriptedBackend(
        [
            [
                ToolCall(name="lookup", arguments={"key": "a"}),
                ToolCall(name="lookup", arguments={"key": "b"}),
            ],
            "A and B",
        ]
    )
    result = await Agent("p", "Look up.", backend, tools=[lookup]).arun("a and b")
    assert [c.result for c in result.trace.tool_calls] == ["A", "B"]
    assert [m.content for m in last_tool_messages(backend.requests[1])] == ["A", "B"]
    assert result.trace.tool_calls[0].step == result.trace.tool_calls[1].step == 1


def test_structured_output_uses_the_schema_and_is_repaired_after_an_invalid_answer():
    backend = ScriptedBackend(
        [
            '{"city": "Paris"}',
            Step('{"city": "Paris", "sunny": true}', expect="sunny: Field required"),
        ]
    )
    agent = Agent("f", "Forecast.", backend, output_type=Forecast)
    result = agent.run("Is it sunny in Paris?")
    assert result.output == Forecast(city="Paris", sunny=True)
    schema = backend.requests[0].response_schema
    assert schema["required"] == ["city", "sunny"]
    assert result.trace.steps == 2


def test_structured_output_retries_are_bounded():
    backend = ScriptedBackend(["nope", "still nope"])
    agent = Agent(
        "f", "Forecast.", backend, output_type=Forecast, limits=AgentLimits(output_retries=1)
    )
    with pytest.raises(ModelOutputError, match="does not match Forecast after 1 re-ask"):
        agent.run("Paris?")


def test_backend_without_json_output_gets_the_schema_in_the_prompt():
    plain = Capabilities(native_tool_calls=True, json_schema_output=False)
    backend = ScriptedBackend(['{"city": "Oslo", "sunny": false}'], capabilities=plain)
    result = Agent("f", "Forecast.", backend, output_type=Forecast).run("Oslo?")
    assert result.output == Forecast(city="Oslo", sunny=False)
    assert backend.requests[0].response_schema is None
    assert '"sunny"' in backend.requests[0].messages[0].content


def test_max_steps_limit_ends_the_run_with_its_name():
    backend = ScriptedBackend([ToolCall(name="get_weather", arguments={"city": "Paris"})] * 2)
    agent = Agent("w", "Weather.", backend, tools=[get_weather], limits=AgentLimits(max_steps=2))
    result = agent.run("Paris?")
    assert result.stop_reason == "max_steps" and not result.ok and result.output is None
    assert result.trace.stop_reason == "max_steps" and result.trace.steps == 2


def test_max_tokens_limit_ends_the_run_with_its_name():
    big = Completion(
        tool_calls=(ToolCall(name="get_weather", arguments={"city": "Paris"}),),
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=900, completion_tokens=200),
    )
    backend = ScriptedBackend([big, "never asked"])
    agent = Agent(
        "w", "Weather.", backend, tools=[get_weather], limits=AgentLimits(max_tokens=1000)
    )
    result = agent.run("Paris?")
    assert result.stop_reason == "max_tokens"
    assert result.trace.tool_calls == []  # the over-budget turn's calls were not run
    assert backend.remaining == 1


def test_wall_clock_timeout_ends_the_run_with_its_name():
    async def slow_model(request):
        await asyncio.sleep(5)
        return "too late"

    agent = Agent("s", "Think.", FunctionBackend(slow_model), limits=AgentLimits(timeout_s=0.05))
    result = agent.run("Anything?")
    assert result.stop_reason == "timeout" and result.output is None


def test_timeout_also_covers_tool_calls():
    backend = ScriptedBackend([ToolCall(name="nap", arguments={"seconds": 5})])
    agent = Agent(
        "s",
        "Nap.",
        backend,
        tools=[nap],
        limits=AgentLimits(timeout_s=0.1),
        tool_limits=ToolLimits(timeout_s=10),
    )
    assert agent.run("Sleep.").stop_reason == "timeout"


def test_slow_tool_times_out_and_the_model_hears_about_it():
    backend = ScriptedBackend(
        [
            ToolCall(name="nap", arguments={"seconds": 5}),
            Step("The tool was too slow.", expect="timed out after 0.05 s"),
        ]
    )
    agent = Agent("s", "Nap.", backend, tools=[nap], tool_limits=ToolLimits(timeout_s=0.05))
    result = agent.run("Sleep.")
    assert result.ok and result.trace.tool_calls[0].error == "timeout"


def test_permission_denied_tools_are_not_offered_and_not_run():
    ran = []

    @tool
    def delete_everything() -> str:
        """Delete all files."""
        ran.append(True)
        return "deleted"

    backend = ScriptedBackend(
        [
            ToolCall(name="delete_everything"),
            Step("I may not do that.", expect="not permitted"),
        ]
    )
    agent = Agent(
        "intern",
        "Help.",
        backend,
        tools=[delete_everything, get_weather],
        permissions=Permissions({"intern": ["get_*"]}),
    )
    result = agent.run("Clean up.")
    assert ran == []
    assert result.trace.tool_calls[0].error == "permission"
    assert [t.name for t in backend.requests[0].tools] == ["get_weather"]


def test_path_traversal_is_refused_inside_a_run(tmp_path):
    (tmp_path / "secret.txt").write_text("top secret")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    backend = ScriptedBackend(
        [
            ToolCall(name="read_file", arguments={"path": "../secret.txt"}),
            Step("Refused.", expect="'..' may not leave the workspace"),
        ]
    )
    result = Agent("r", "Read.", backend, tools=file_tools(workspace)).run("Read the secret.")
    record = result.trace.tool_calls[0]
    assert record.error == "permission" and "top secret" not in record.result


def test_tool_choice_applies_to_the_first_turn_and_max_tool_rounds_withholds_tools():
    backend = ScriptedBackend([ToolCall(name="get_weather", arguments={"city": "Paris"}), "Sunny."])
    agent = Agent(
        "w", "Weather.", backend, tools=[get_weather], tool_choice="get_weather", max_tool_rounds=1
    )
    agent.run("Paris?")
    assert backend.requests[0].tool_choice == "get_weather"
    assert backend.requests[1].tool_choice == "none"


def test_unknown_tool_choice_is_a_config_error():
    with pytest.raises(ConfigError, match="names no tool"):
        Agent("w", "x", ScriptedBackend([]), tools=[get_weather], tool_choice="nope")


def test_tools_need_a_backend_that_can_call_them():
    backend = ScriptedBackend(["x"], capabilities=Capabilities())
    with pytest.raises(ConfigError, match="can neither call tools natively"):
        Agent("w", "x", backend, tools=[get_weather]).run("go")


async def test_stream_yields_text_tool_events_and_the_result():
    backend = ScriptedBackend(
        [ToolCall(name="get_weather", arguments={"city": "Oslo"}), "Snow in Oslo today."]
    )
    agent = Agent("w", "Weather.", backend, tools=[get_weather])
    events = [e async for e in agent.stream("Oslo?")]
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["ToolStarted", "ToolFinished"]
    assert isinstance(events[-1], RunFinished) and events[-1].result.output == "Snow in Oslo today."
    text = "".join(e.delta for e in events if isinstance(e, TextDelta))
    assert text == "Snow in Oslo today."
    assert isinstance(events[0], ToolStarted) and isinstance(events[1], ToolFinished)


async def test_memory_is_recalled_before_and_written_after():
    class ListMemory:
        def __init__(self):
            self.items = ["Paris trips need an umbrella in April."]
            self.queries = []

        async def recall(self, query):
            self.queries.append(query)
            return list(self.items)

        async def remember(self, text, *, metadata=None):
            self.items.append(text)

    memory = ListMemory()
    backend = ScriptedBackend([Step("Bring an umbrella.", expect="umbrella in April")])
    result = await Agent("m", "Advise.", backend, memory=memory).arun("Packing for Paris?")
    assert result.ok and memory.queries == ["Packing for Paris?"]
    assert memory.items[-1] == "Task: Packing for Paris?\nAnswer: Bring an umbrella."


def test_planner_caller_summarizer_split_uses_three_backends():
    planner = ScriptedBackend(
        [
            '{"next": "call_tool", "plan": "get the weather in Oslo"}',
            Step(
                '{"next": "answer", "plan": "done"}',
                expect=lambda r: any("snow" in (m.content or "") for m in r.messages),
            ),
        ],
        name="planner",
    )
    caller = ScriptedBackend(
        [Step(ToolCall(name="get_weather", arguments={"city": "Oslo"}), expect="weather in Oslo")],
        name="caller",
    )
    summarizer = ScriptedBackend(['{"city": "Oslo", "sunny": false}'], name="summarizer")
    agent = Agent(
        "trio",
        "Weather.",
        ScriptedBackend([], name="unused"),
        tools=[get_weather],
        output_type=Forecast,
        roles=Roles(planner=planner, caller=caller, summarizer=summarizer),
    )
    result = agent.run("Is it sunny in Oslo?")
    assert result.output == Forecast(city="Oslo", sunny=False)
    assert [(t.role, t.backend) for t in result.trace.turns] == [
        ("planner", "planner"),
        ("caller", "caller"),
        ("planner", "planner"),
        ("summarizer", "summarizer"),
    ]
    assert caller.requests[0].tool_choice == "required"
    assert planner.requests[0].tools == () and planner.requests[0].response_schema["required"] == [
        "next",
        "plan",
    ]
    assert summarizer.requests[0].response_schema["required"] == ["city", "sunny"]
    for double in (planner, caller, summarizer):
        double.assert_exhausted()


async def test_two_concurrent_runs_of_one_agent_keep_their_own_state():
    # The backend holds every request until the other run has reached the same
    # turn, so the two runs' turns, tool calls and streams interleave.
    arrived: dict[int, list[str]] = {}
    released: dict[int, asyncio.Event] = {}

    async def both_at(turn: int, city: str) -> None:
        arrived.setdefault(turn, []).append(city)
        gate = released.setdefault(turn, asyncio.Event())
        if len(arrived[turn]) == 2:
            gate.set()
        await gate.wait()

    async def model(request):
        city = "Paris" if "Paris" in request.messages[1].content else "Oslo"
        results = last_tool_messages(request)
        await both_at(len(results), city)
        if not results:
            return ToolCall(name="get_weather", arguments={"city": city})
        return f"In {city} it is {results[-1].content} today."

    # A run whose gate never opens ends at its timeout instead of hanging the suite.
    limits = AgentLimits(timeout_s=10)
    agent = Agent(
        "w", "Report the weather.", FunctionBackend(model), tools=[get_weather], limits=limits
    )

    async def deltas(task):
        return [e async for e in agent.stream(task)]

    paris, oslo = await asyncio.gather(deltas("Weather in Paris?"), deltas("Weather in Oslo?"))
    # Both runs reached each turn before either went on: they did interleave.
    assert {turn: sorted(cities) for turn, cities in arrived.items()} == {
        0: ["Oslo", "Paris"],
        1: ["Oslo", "Paris"],
    }
    for events, city, other, weather in (
        (paris, "Paris", "Oslo", "sunny, 21 C"),
        (oslo, "Oslo", "Paris", "snow, -3 C"),
    ):
        result = events[-1].result
        assert result.output == f"In {city} it is {weather} today."
        streamed = "".join(e.delta for e in events if isinstance(e, TextDelta))
        assert streamed == result.text
        (record,) = result.trace.tool_calls
        assert json.loads(record.arguments) == {"city": city} and record.result == weather
        assert [t.step for t in result.trace.turns] == [1, 2]
        assert not any(other in (getattr(m, "content", None) or "") for m in result.trace.messages)


async def test_a_stream_without_completion_is_a_backend_protocol_error():
    # The backend broke its protocol; no model output is at fault, so it is a
    # BackendError (a fallback router or the memory guard treats it as one).
    from plait.backends import Backend
    from plait.completions import StreamChunk
    from plait.errors import BackendProtocolError

    class NoFinal(Backend):
        name = "nofinal"

        async def stream(self, request):
            yield StreamChunk(delta="partial")

    with pytest.raises(BackendProtocolError, match="'nofinal' ended its stream without"):
        await Agent("a", "x", NoFinal()).arun("hi")
