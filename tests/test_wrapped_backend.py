"""WrappedBackend forwards explicitly; Pinnable says which backends can pin a prefix."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from plait import ChatRequest, Completion
from plait.agents._hiring import TeamPrefix
from plait.backends import Backend, Capabilities, Pinnable, WrappedBackend
from plait.backends.testing import FunctionBackend, ScriptedBackend
from plait.completions import StreamChunk
from plait.messages import Message


def ask(text: str) -> ChatRequest:
    return ChatRequest.from_prompt(text)


class PinningDouble(ScriptedBackend):
    """A scripted backend that also pins prefixes (as the local engine does)."""

    def __init__(self, script: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(script, **kwargs)
        self.pinned: list[str] = []
        self.unpinned: list[int] = []

    async def pin(self, prefix: str | Sequence[Message], *, ttl_s: float | None = None) -> int:
        self.pinned.append(str(prefix))
        return len(self.pinned)

    async def unpin(self, pinned: Any) -> bool:
        self.unpinned.append(pinned)
        return True


class Shouting(WrappedBackend):
    """Changes the answer's text, forwards everything else."""

    async def complete(self, request: ChatRequest) -> Completion:
        completion = await self.wrapped.complete(request)
        return completion.model_copy(update={"text": completion.text.upper()})


async def test_a_wrapper_forwards_name_capabilities_calls_and_close():
    caps = Capabilities(native_tool_calls=True, embeddings=True)
    closed: list[bool] = []

    class Inner(FunctionBackend):
        async def embed(self, texts: Sequence[str]) -> list[list[float]]:
            return [[float(len(t))] for t in texts]

        async def aclose(self) -> None:
            closed.append(True)

    inner = Inner(lambda r: "quiet words", name="inner", capabilities=caps)
    wrapper = Shouting(inner)
    assert wrapper.name == "inner" and wrapper.capabilities is caps
    assert (await wrapper.complete(ask("x"))).text == "QUIET WORDS"
    chunks = [c async for c in wrapper.stream(ask("y"))]
    assert "".join(c.delta for c in chunks) == "quiet words"  # stream not overridden
    assert await wrapper.embed(["ab", "c"]) == [[2.0], [1.0]]
    await wrapper.aclose()
    assert closed == [True] and len(inner.requests) == 2


async def test_stopping_a_wrapper_stream_closes_the_inner_stream_at_once():
    events: list[str] = []

    class Inner(Backend):
        async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
            try:
                yield StreamChunk(completion=Completion(text="done"))
                yield StreamChunk(delta="never read")
            finally:
                events.append("inner closed")

    async with contextlib.aclosing(WrappedBackend(Inner()).stream(ask("x"))) as chunks:
        async for chunk in chunks:
            assert chunk.completion is not None
            break
    assert events == ["inner closed"]


async def test_a_wrapper_is_pinnable_exactly_when_its_backend_is():
    plain = Shouting(ScriptedBackend(["x"]))
    assert not isinstance(plain, Pinnable) and not hasattr(plain, "pin")
    double = PinningDouble(["hello"])
    pinnable = Shouting(Shouting(double))  # through two layers
    assert isinstance(double, Pinnable) and isinstance(pinnable, Pinnable)
    assert isinstance(pinnable, Shouting)
    handle = await pinnable.pin("team brief")
    assert await pinnable.unpin(handle) is True
    assert double.pinned == ["team brief"] and double.unpinned == [1]
    # The subclass's own override still wins in the pinnable variant.
    assert (await pinnable.complete(ask("x"))).text == "HELLO"


async def test_team_prefix_pins_through_a_wrapper_and_skips_backends_that_cannot_pin():
    double = PinningDouble([])
    wrapped = Shouting(double)
    prefix = TeamPrefix("Team brief: be brief.")
    assert await prefix.acquire(wrapped) and await prefix.acquire(wrapped)
    assert prefix.pinned == 1 and double.pinned == ["Team brief: be brief."]
    assert not await prefix.release(wrapped) and await prefix.release(wrapped)
    assert double.unpinned == [1] and prefix.pinned == 0
    assert not await prefix.acquire(Shouting(ScriptedBackend([])))
