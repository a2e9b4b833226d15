"""Short tests against the real embedded model (SmolLM2-135M-Instruct, Q4_1)."""

import asyncio

import jsonschema
import pytest

from plait import ChatRequest, ToolSpec
from plait.backends import LocalBackend
from plait.errors import ContextLengthExceeded, ModelLoadError

pytestmark = pytest.mark.local_model

TOOLS = (
    ToolSpec(
        name="get_weather",
        description="Get the current weather for a city.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    ),
    ToolSpec(
        name="add",
        description="Add two numbers.",
        parameters={
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    ),
)


async def test_one_sentence_answer(local_backend):
    request = ChatRequest.from_prompt(
        "What color is the sky? Answer in one sentence.", max_tokens=40, temperature=0.0
    )
    completion = await local_backend.complete(request)
    assert "blue" in completion.text.lower()
    assert completion.finish_reason == "stop"
    assert completion.usage.prompt_tokens > 10 and completion.usage.completion_tokens > 0
    assert completion.timings.first_token_s is not None
    assert completion.timings.total_s >= completion.timings.first_token_s


async def test_json_answer_validates_against_schema_with_enum_and_required(local_backend):
    schema = {
        "type": "object",
        "properties": {
            "sentiment": {"enum": ["positive", "negative", "neutral"]},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 10},
        },
        "required": ["sentiment", "confidence"],
    }
    request = ChatRequest.from_prompt(
        "Classify the sentiment of: 'I love this sunny day!'",
        response_schema=schema,
        max_tokens=60,
        temperature=0.0,
    )
    value = (await local_backend.complete(request)).parse_json()
    jsonschema.validate(value, schema)
    assert value["sentiment"] == "positive"


async def test_tool_call_is_chosen_from_two_tools_with_valid_arguments(local_backend):
    request = ChatRequest.from_prompt(
        "What is the weather in Paris?",
        tools=TOOLS,
        tool_choice="required",
        max_tokens=80,
        temperature=0.0,
    )
    completion = await local_backend.complete(request)
    assert completion.finish_reason == "tool_calls"
    call = completion.tool_calls[0]
    assert call.name == "get_weather"
    jsonschema.validate(call.parsed_arguments(), TOOLS[0].parameters)
    assert call.parsed_arguments()["city"] == "Paris"


async def test_stream_deltas_add_up_to_the_completion_and_honour_stop(local_backend):
    request = ChatRequest.from_prompt(
        "Count from 1 to 10, separated by commas.", stop=("5",), max_tokens=60, temperature=0.0
    )
    chunks = [c async for c in local_backend.stream(request)]
    final = chunks[-1].completion
    assert final is not None and final.finish_reason == "stop"
    assert "".join(c.delta for c in chunks[:-1]) == final.text
    assert "5" not in final.text and "4" in final.text


async def test_max_tokens_and_seed(local_backend):
    def request(seed: int) -> ChatRequest:
        return ChatRequest.from_prompt(
            "Write a short poem about the sea.", max_tokens=12, temperature=1.0, seed=seed
        )

    first = await local_backend.complete(request(7))
    again = await local_backend.complete(request(7))
    assert first.finish_reason == "length" and first.usage.completion_tokens == 12
    assert first.text == again.text


async def test_repeated_prefix_is_reported_as_cached(local_backend):
    request = ChatRequest.from_prompt("Say yes.", system="You are terse." * 5, max_tokens=3)
    await local_backend.complete(request)
    second = await local_backend.complete(request)
    assert second.usage.cached_prompt_tokens >= second.usage.prompt_tokens - 1


async def test_over_long_request_is_refused_and_does_not_poison_the_model(local_backend):
    too_long = ChatRequest.from_prompt("word " * 5000, max_tokens=5)
    with pytest.raises(ContextLengthExceeded, match="context of model"):
        await local_backend.complete(too_long)
    ok = await local_backend.complete(ChatRequest.from_prompt("Say hi.", max_tokens=8))
    assert ok.usage.completion_tokens > 0


async def test_abandoned_stream_stops_generation_and_frees_the_model(local_backend):
    stream = local_backend.stream(ChatRequest.from_prompt("Tell a long story.", max_tokens=200))
    async for chunk in stream:
        if chunk.delta:
            break
    await stream.aclose()
    after = await asyncio.wait_for(
        local_backend.complete(ChatRequest.from_prompt("Say hi.", max_tokens=5)), timeout=30
    )
    assert after.usage.completion_tokens > 0


async def test_concurrent_requests_all_complete(local_backend):
    prompts = ["Name a fruit.", "Name a color.", "Name an animal."]
    results = await asyncio.gather(
        *(
            local_backend.complete(ChatRequest.from_prompt(p, max_tokens=8, temperature=0.0))
            for p in prompts
        )
    )
    assert all(r.usage.completion_tokens > 0 for r in results)


async def test_unknown_and_corrupt_model_files_raise_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        LocalBackend(tmp_path / "nope.gguf").load()
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 256)
    with pytest.raises(ModelLoadError, match="llama.cpp could not load it") as info:
        LocalBackend(corrupt).load()
    assert str(corrupt) in str(info.value)


def test_plait_local_model_setting_selects_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAIT_LOCAL_MODEL", str(tmp_path / "elsewhere.gguf"))
    backend = LocalBackend()
    assert backend.model_path == tmp_path / "elsewhere.gguf"
    with pytest.raises(ModelLoadError, match="elsewhere.gguf"):
        backend.load()
