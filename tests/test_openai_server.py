"""OpenAIBackend against a real server: llama-cpp-python's OpenAI-compatible one,
started on a free loopback port with the embedded model and stopped afterwards."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import jsonschema
import pytest
from _servers import free_port, running_server

from plait import ChatRequest, SystemMessage, ToolSpec, UserMessage
from plait.backends import OpenAIBackend, default_model_path
from plait.errors import BackendHTTPError

pytestmark = pytest.mark.local_model


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    command = [
        sys.executable, "-m", "plait.backends.local._llama_server",
        "--model", str(default_model_path()), "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "1",
    ]  # fmt: skip
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    with running_server(command, f"{url}/models", log_path=log_path):
        yield url


@pytest.fixture
async def backend(server_url):
    backend = OpenAIBackend(
        "smollm2", base_url=server_url, api_key_env=None, schema_mode="json_object", timeout=120
    )
    yield backend
    await backend.aclose()


async def test_completion_answers_with_usage(backend):
    request = ChatRequest.from_prompt(
        "What color is the sky? Answer in one sentence.", max_tokens=40, temperature=0.0
    )
    completion = await backend.complete(request)
    assert "sky" in completion.text.lower()
    assert completion.finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens > 10
    assert 0 < completion.usage.completion_tokens <= 40
    assert completion.model == "smollm2"


async def test_stream_yields_deltas_that_add_up_to_the_completion(backend):
    request = ChatRequest.from_prompt("Count from 1 to 5.", max_tokens=24, temperature=0.0)
    deltas, final = [], None
    async for chunk in backend.stream(request):
        if chunk.is_final:
            final = chunk.completion
        else:
            deltas.append(chunk.delta)
    assert final is not None
    assert len(deltas) > 1
    assert "".join(deltas) == final.text
    assert final.timings.first_token_s is not None
    assert final.timings.total_s >= final.timings.first_token_s


async def test_streamed_and_plain_answers_agree_at_temperature_zero(backend):
    request = ChatRequest.from_prompt("Name a fruit.", max_tokens=12, temperature=0.0, seed=1)
    plain = await backend.complete(request)
    streamed = [c async for c in backend.stream(request)][-1].completion
    assert streamed is not None and streamed.text == plain.text


async def test_json_output_validates_against_the_schema(backend):
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "country": {"enum": ["France", "Germany", "Spain"]},
            "population_millions": {"type": "integer"},
        },
        "required": ["city", "country", "population_millions"],
    }
    request = ChatRequest.from_prompt(
        "Give the largest city of France and its population in millions as JSON.",
        response_schema=schema,
        max_tokens=60,
        temperature=0.0,
    )
    completion = await backend.complete(request)
    jsonschema.validate(completion.parse_json(), schema)


async def test_forced_tool_call_comes_back_as_a_tool_call(backend):
    tool = ToolSpec(
        name="get_weather",
        description="Get the weather of a city.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    )
    request = ChatRequest(
        messages=(
            SystemMessage(content="You call tools."),
            UserMessage(content="What is the weather in Paris?"),
        ),
        tools=(tool,),
        tool_choice="get_weather",
        max_tokens=40,
        temperature=0.0,
    )
    completion = await backend.complete(request)
    assert completion.finish_reason == "tool_calls"
    (call,) = completion.tool_calls
    assert call.name == "get_weather"
    assert isinstance(call.parsed_arguments()["city"], str)
    # Streamed, the server repeats the name in every piece; it is read once.
    chunks = [c async for c in backend.stream(request)]
    streamed = chunks[-1].completion
    assert streamed is not None
    (call,) = streamed.tool_calls
    assert call.name == "get_weather"
    assert isinstance(call.parsed_arguments()["city"], str)


async def test_error_status_carries_the_servers_message(server_url):
    backend = OpenAIBackend("smollm2", base_url=server_url + "/no-such-api", api_key_env=None)
    try:
        with pytest.raises(BackendHTTPError) as info:
            await backend.complete(ChatRequest.from_prompt("hi", max_tokens=4))
    finally:
        await backend.aclose()
    assert info.value.status_code == 404
    assert info.value.server_message == "Not Found"
    assert "/no-such-api/chat/completions" in str(info.value)
