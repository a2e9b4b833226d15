"""OpenAIBackend's wire format and failure paths, against httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from plait import AssistantMessage, ChatRequest, ToolCall, ToolMessage, ToolSpec, UserMessage
from plait.backends import OpenAIBackend
from plait.backends.openai._retry import retry_after_seconds
from plait.errors import (
    BackendHTTPError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
)
from plait.retry import RetryPolicy

ANSWER = {
    "model": "m",
    "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 1,
        "prompt_tokens_details": {"cached_tokens": 8},
    },
}
TOOL = ToolSpec(
    name="add",
    parameters={"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]},
)


class Server:
    """Answers each request with the next scripted response (or raises it)."""

    def __init__(self, *replies: httpx.Response | Exception | Callable[..., httpx.Response]):
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return reply(request)
        return reply

    def bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests]


def make(server: Server, **kwargs) -> tuple[OpenAIBackend, list[float]]:
    kwargs.setdefault(
        "retry",
        RetryPolicy(max_attempts=3, initial_backoff_s=0.25, max_backoff_s=1.0, jitter=1.0),
    )
    backend = OpenAIBackend(
        "m", base_url="http://test/v1", transport=httpx.MockTransport(server), **kwargs
    )
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    backend._sleep = record
    return backend, waits


def sse(*events: dict | str) -> httpx.Response:
    lines = []
    for event in events:
        lines.append("data: " + (event if isinstance(event, str) else json.dumps(event)) + "\n\n")
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content="".join(lines).encode()
    )


REQUEST = ChatRequest.from_prompt("hello", max_tokens=5)


async def test_429_honours_retry_after_then_succeeds():
    server = Server(
        httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {"message": "slow"}}),
        httpx.Response(200, json=ANSWER),
    )
    backend, waits = make(server)
    completion = await backend.complete(REQUEST)
    assert completion.text == "hi"
    assert waits == [2.0]
    assert len(server.requests) == 2


async def test_500_then_success_backs_off_with_jitter_within_bounds():
    server = Server(httpx.Response(500, text="boom"), httpx.Response(200, json=ANSWER))
    backend, waits = make(server)
    assert (await backend.complete(REQUEST)).text == "hi"
    assert len(waits) == 1 and 0.0 <= waits[0] <= 0.25


async def test_persistent_503_gives_up_after_max_attempts_with_the_servers_message():
    server = Server(*[httpx.Response(503, json={"error": {"message": "overloaded"}})] * 3)
    backend, waits = make(server)
    with pytest.raises(BackendHTTPError) as info:
        await backend.complete(REQUEST)
    assert info.value.status_code == 503 and info.value.server_message == "overloaded"
    assert len(server.requests) == 3 and len(waits) == 2
    assert waits[1] <= 0.5  # second backoff ceiling is base * 2


async def test_400_is_not_retried():
    server = Server(httpx.Response(400, json={"error": {"message": "bad field 'x'"}}))
    backend, waits = make(server)
    with pytest.raises(BackendHTTPError) as info:
        await backend.complete(REQUEST)
    assert info.value.status_code == 400
    assert "bad field 'x'" in str(info.value) and "http://test/v1/chat/completions" in str(
        info.value
    )
    assert len(server.requests) == 1 and waits == []


async def test_connect_errors_are_retried_then_reported_as_unavailable():
    server = Server(*[httpx.ConnectError("refused")] * 3)
    backend, waits = make(server)
    with pytest.raises(BackendUnavailable, match="3 attempt"):
        await backend.complete(REQUEST)
    assert len(waits) == 2


async def test_connect_error_then_success():
    server = Server(httpx.ConnectError("refused"), httpx.Response(200, json=ANSWER))
    backend, _ = make(server)
    assert (await backend.complete(REQUEST)).text == "hi"


async def test_read_timeout_is_a_backend_timeout_and_not_retried():
    server = Server(httpx.ReadTimeout("slow"), httpx.Response(200, json=ANSWER))
    backend, _ = make(server)
    with pytest.raises(BackendTimeout):
        await backend.complete(REQUEST)
    assert len(server.requests) == 1


async def test_invalid_json_body_is_a_protocol_error():
    server = Server(httpx.Response(200, text="<html>proxy error</html>"))
    backend, _ = make(server)
    with pytest.raises(BackendProtocolError, match="invalid JSON"):
        await backend.complete(REQUEST)


async def test_answer_without_choices_is_a_protocol_error():
    server = Server(httpx.Response(200, json={"object": "chat.completion"}))
    backend, _ = make(server)
    with pytest.raises(BackendProtocolError, match="choices"):
        await backend.complete(REQUEST)


async def test_stream_tool_call_name_repeated_in_every_piece_is_read_once():
    # llama-cpp-python's server repeats the whole function name in each piece;
    # other servers may split a name across pieces.
    def piece(index: int, name: str, arguments: str) -> dict:
        call = {"index": index, "function": {"name": name, "arguments": arguments}}
        return {"choices": [{"delta": {"tool_calls": [call]}}]}

    server = Server(
        sse(
            piece(0, "get_weather", '{"city"'),
            piece(0, "get_weather", ': "Oslo"}'),
            piece(1, "get_", "{}"),
            piece(1, "time", ""),
            {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
            "[DONE]",
        )
    )
    backend, _ = make(server)
    request = ChatRequest.from_prompt("weather", tools=(TOOL,))
    final = [c async for c in backend.stream(request)][-1].completion
    assert final is not None
    assert [(c.name, c.parsed_arguments()) for c in final.tool_calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_time", {}),
    ]


async def test_usage_reports_cached_prompt_tokens():
    backend, _ = make(Server(httpx.Response(200, json=ANSWER)))
    usage = (await backend.complete(REQUEST)).usage
    assert (usage.prompt_tokens, usage.cached_prompt_tokens, usage.completion_tokens) == (12, 8, 1)


async def test_stream_assembles_tool_call_deltas_and_final_usage():
    server = Server(
        sse(
            {"model": "m", "choices": [{"delta": {"role": "assistant", "content": "Let me "}}]},
            {"choices": [{"delta": {"content": "add."}}]},
            {
                "choices": [
                    {
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "id": "call_1", "function": {"name": "add"}},
                                {"index": 1, "id": "call_2", "function": {"name": "add"}},
                            ]
                        }
                    }
                ]
            },
            {
                "choices": [
                    {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}}
                ]
            },
            {
                "choices": [
                    {"delta": {"tool_calls": [{"index": 1, "function": {"arguments": '{"a": 2}'}}]}}
                ]
            },
            {
                "choices": [
                    {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}
                ]
            },
            {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
            {
                "choices": [],
                "usage": {"prompt_tokens": 30, "completion_tokens": 9, "cached_tokens": 20},
            },
            "[DONE]",
        )
    )
    backend, _ = make(server)
    request = ChatRequest.from_prompt("add", tools=(TOOL,))
    chunks = [c async for c in backend.stream(request)]
    assert [c.delta for c in chunks[:-1]] == ["Let me ", "add."]
    final = chunks[-1].completion
    assert final is not None and final.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.parsed_arguments()) for c in final.tool_calls] == [
        ("call_1", "add", {"a": 1}),
        ("call_2", "add", {"a": 2}),
    ]
    assert final.usage.prompt_tokens == 30 and final.usage.cached_prompt_tokens == 20
    body = server.bodies()[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_malformed_sse_event_is_a_protocol_error():
    server = Server(sse({"choices": [{"delta": {"content": "a"}}]}, "{not json"))
    backend, _ = make(server)
    with pytest.raises(BackendProtocolError, match="malformed server-sent event"):
        async for _ in backend.stream(REQUEST):
            pass


async def test_error_event_inside_a_stream_is_an_http_error():
    server = Server(sse({"error": {"message": "model crashed"}}))
    backend, _ = make(server)
    with pytest.raises(BackendHTTPError, match="model crashed"):
        async for _ in backend.stream(REQUEST):
            pass


async def test_stream_is_retried_before_its_first_byte():
    server = Server(
        httpx.Response(502, text="bad gateway"),
        sse({"choices": [{"delta": {"content": "ok"}}]}, "[DONE]"),
    )
    backend, _ = make(server)
    chunks = [c async for c in backend.stream(REQUEST)]
    assert chunks[-1].completion is not None and chunks[-1].completion.text == "ok"


async def test_server_ignoring_stream_still_gives_a_completion():
    backend, _ = make(Server(httpx.Response(200, json=ANSWER)))
    chunks = [c async for c in backend.stream(REQUEST)]
    assert chunks[0].delta == "hi" and chunks[-1].completion.usage.prompt_tokens == 12


async def test_body_asks_for_one_call_when_parallel_calls_are_off():
    server = Server(httpx.Response(200, json=ANSWER))
    backend, _ = make(server)
    request = ChatRequest.from_prompt("add", tools=(TOOL,), parallel_tool_calls=False)
    await backend.complete(request)
    assert server.bodies()[0]["parallel_tool_calls"] is False


async def test_body_carries_tools_schema_and_sampling_and_keeps_prefix_byte_stable():
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    first = ChatRequest(
        messages=(UserMessage(content="u1"),),
        tools=(TOOL,),
        tool_choice="add",
        response_schema=schema,
        seed=7,
        stop=("END",),
        max_tokens=9,
    )
    call = ToolCall(id="c1", name="add", arguments={"a": 1})
    second = first.with_messages(
        [
            *first.messages,
            AssistantMessage(tool_calls=(call,)),
            ToolMessage(content="1", tool_call_id="c1"),
        ]
    )
    server = Server(httpx.Response(200, json=ANSWER), httpx.Response(200, json=ANSWER))
    backend, _ = make(server)
    await backend.complete(first)
    await backend.complete(second)
    body = server.bodies()[0]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert "parallel_tool_calls" not in body  # left to the server unless asked
    assert body["tools"][0]["function"]["parameters"] == TOOL.parameters
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }
    assert (body["seed"], body["stop"], body["max_tokens"]) == (7, ["END"], 9)
    assert server.bodies()[1]["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'
    # Same conversation prefix -> same bytes up to where the messages diverge.
    raw1, raw2 = (r.content.decode() for r in server.requests)
    prefix = raw1[: raw1.index('"u1"}') + 5]
    assert raw2.startswith(prefix)


async def test_json_object_mode_sends_the_schema_alongside():
    server = Server(httpx.Response(200, json=ANSWER))
    backend, _ = make(server, schema_mode="json_object")
    await backend.complete(ChatRequest.from_prompt("x", response_schema={"type": "object"}))
    assert server.bodies()[0]["response_format"] == {
        "type": "json_object",
        "schema": {"type": "object"},
    }


async def test_api_key_comes_from_the_environment_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    server = Server(httpx.Response(401, json={"error": {"message": "invalid key"}}))
    backend, _ = make(server, api_key_env="MY_KEY")
    with pytest.raises(BackendHTTPError) as info:
        await backend.complete(REQUEST)
    assert server.requests[0].headers["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in str(info.value) and "sk-secret" not in repr(backend)
    assert "sk-secret" not in repr(vars(backend))


async def test_embeddings_come_back_in_input_order():
    data = {"data": [{"index": 1, "embedding": [0, 1]}, {"index": 0, "embedding": [1, 0]}]}
    server = Server(httpx.Response(200, json=data))
    backend, _ = make(server, embedding_model="emb")
    assert await backend.embed(["a", "b"]) == [[1.0, 0.0], [0.0, 1.0]]
    assert server.bodies()[0] == {"model": "emb", "input": ["a", "b"]}


async def test_embeddings_count_mismatch_is_a_protocol_error():
    server = Server(httpx.Response(200, json={"data": [{"index": 0, "embedding": [1]}]}))
    backend, _ = make(server)
    with pytest.raises(BackendProtocolError, match="1 embeddings for 2 texts"):
        await backend.embed(["a", "b"])


async def test_shared_client_is_reused_and_closed():
    server = Server(httpx.Response(200, json=ANSWER), httpx.Response(200, json=ANSWER))
    backend, _ = make(server)
    await backend.complete(REQUEST)
    client = backend._client
    await backend.complete(REQUEST)
    assert backend._client is client
    await backend.aclose()
    assert client is not None and client.is_closed and backend._client is None


def test_bad_constructor_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIBackend("m", base_url="localhost:8000")
    with pytest.raises(ConfigError, match="schema_mode"):
        OpenAIBackend("m", schema_mode="yaml")  # type: ignore[arg-type]


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert RetryPolicy(max_retry_after_s=5).delay(1, retry_after=100.0) == 5
