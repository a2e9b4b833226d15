import asyncio

import pytest

from plait import ChatRequest, Completion, ToolCall
from plait.backends import Backend
from plait.backends.testing import FunctionBackend, ScriptedBackend, ScriptExhausted, Step
from plait.errors import BackendTimeout, ConfigError


def ask(text: str) -> ChatRequest:
    return ChatRequest.from_prompt(text)


async def test_scripted_backend_replays_in_order_and_records_requests():
    backend = ScriptedBackend(
        [
            Step(ToolCall(name="add", arguments={"a": 1, "b": 2}), expect="add 1 and 2"),
            "The sum is 3.",
        ]
    )
    first = await backend.complete(ask("please add 1 and 2"))
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls[0].parsed_arguments() == {"a": 1, "b": 2}
    second = await backend.complete(ask("and now?"))
    assert second.text == "The sum is 3."
    assert [r.messages[-1].content for r in backend.requests] == ["please add 1 and 2", "and now?"]
    backend.assert_exhausted()


async def test_scripted_backend_fails_loudly_when_expectation_is_not_met():
    backend = ScriptedBackend([Step("hi", expect="weather")])
    with pytest.raises(AssertionError, match="expected the last message to contain 'weather'"):
        await backend.complete(ask("tell me a joke"))


async def test_scripted_backend_accepts_a_predicate_expectation():
    backend = ScriptedBackend([Step("ok", expect=lambda r: r.max_tokens == 5)])
    with pytest.raises(AssertionError, match="did not satisfy"):
        await backend.complete(ChatRequest.from_prompt("x", max_tokens=6))


async def test_scripted_backend_raises_when_script_runs_out():
    backend = ScriptedBackend(["only one"])
    await backend.complete(ask("1"))
    with pytest.raises(ScriptExhausted, match="got request 2 but its script has 1 step"):
        await backend.complete(ask("2"))


async def test_scripted_backend_raises_scripted_errors():
    backend = ScriptedBackend([BackendTimeout("server slow")])
    with pytest.raises(BackendTimeout, match="server slow"):
        await backend.complete(ask("x"))


def test_assert_exhausted_reports_unused_steps():
    backend = ScriptedBackend(["a", "b"])
    with pytest.raises(AssertionError, match="2 scripted step"):
        backend.assert_exhausted()


async def test_stream_yields_text_pieces_then_one_final_completion():
    backend = ScriptedBackend(["Hello there, world."])
    chunks = [c async for c in backend.stream(ask("hi"))]
    assert "".join(c.delta for c in chunks) == "Hello there, world."
    assert [c.is_final for c in chunks].count(True) == 1 and chunks[-1].is_final
    assert chunks[-1].completion.text == "Hello there, world."


async def test_function_backend_supports_sync_and_async_functions():
    sync = FunctionBackend(lambda r: r.messages[-1].content.upper())
    assert (await sync.complete(ask("shout"))).text == "SHOUT"

    async def slow_echo(request: ChatRequest) -> Completion:
        await asyncio.sleep(0)
        return Completion(text=request.messages[-1].content, model="echo")

    echo = FunctionBackend(slow_echo)
    completion = await echo.complete(ask("again"))
    assert completion.text == "again" and completion.model == "echo"
    assert len(echo.requests) == 1


def test_sync_helpers_work_without_a_loop():
    backend = ScriptedBackend(["one two", "three"])
    assert backend.complete_sync(ask("x")).text == "one two"
    chunks = list(backend.stream_sync(ask("y")))
    assert chunks[-1].completion.text == "three"


async def test_sync_helpers_refuse_to_run_inside_a_loop():
    backend = ScriptedBackend(["x"])
    with pytest.raises(ConfigError, match="use 'await backend.complete\\(\\)'"):
        backend.complete_sync(ask("x"))
    with pytest.raises(ConfigError, match="stream_sync\\(\\) was called inside"):
        next(backend.stream_sync(ask("x")))


def test_default_complete_reports_a_stream_without_completion():
    from plait.completions import StreamChunk
    from plait.errors import BackendError

    class NoFinal(Backend):
        name = "nofinal"

        async def stream(self, request):
            yield StreamChunk(delta="partial")

    with pytest.raises(BackendError, match="'nofinal' ended its stream without a completion"):
        NoFinal().complete_sync(ask("x"))


async def test_embed_is_refused_by_backends_without_embeddings():
    from plait.errors import BackendError

    with pytest.raises(BackendError, match="does not provide embeddings"):
        await ScriptedBackend([]).embed(["x"])
