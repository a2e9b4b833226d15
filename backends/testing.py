"""Test doubles shipped with plait: backends that answer from a script or a function.

They read like transcripts::

    backend = ScriptedBackend([
        Step(ToolCall(name="add", arguments={"a": 1, "b": 2}), expect="add 1 and 2"),
        "The sum is 3.",
    ])

Each request consumes the next step; ``expect`` checks what the backend was
asked (a substring of the last message, or a predicate on the request).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk, Usage
from plait.errors import ScriptExhausted
from plait.messages import ToolCall

from ._base import Backend, Capabilities

__all__ = ["FunctionBackend", "Reply", "ScriptExhausted", "ScriptedBackend", "Step"]

Reply: TypeAlias = str | Completion | ToolCall | Sequence[ToolCall] | BaseException
"""What a scripted step answers: text, a completion, tool call(s), or an error to raise."""

_ALL_CAPABILITIES = Capabilities(
    native_tool_calls=True, json_schema_output=True, embeddings=False, prefix_cache=False
)


@dataclass(frozen=True)
class Step:
    """One scripted answer, optionally with a check on the request that gets it.

    Attributes:
        reply: what to answer.
        expect: a substring the request's last message must contain, or a
            predicate on the whole request.
    """

    reply: Reply
    expect: str | Callable[[ChatRequest], bool] | None = None

    def check(self, request: ChatRequest, index: int) -> None:
        if self.expect is None:
            return
        last = request.messages[-1]
        content = getattr(last, "content", None) or ""
        if isinstance(self.expect, str):
            if self.expect not in content:
                raise AssertionError(
                    f"step {index}: expected the last message to contain {self.expect!r}, "
                    f"got {last.role} message {content!r}"
                )
        elif not self.expect(request):
            raise AssertionError(f"step {index}: request did not satisfy expectation: {request!r}")


def _to_completion(reply: Reply, request: ChatRequest, model: str) -> Completion:
    if isinstance(reply, BaseException):
        raise reply
    if isinstance(reply, Completion):
        return reply
    prompt_tokens = sum(_count_words(getattr(m, "content", None) or "") for m in request.messages)
    if isinstance(reply, str):
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=_count_words(reply))
        return Completion(text=reply, usage=usage, model=model)
    calls = (reply,) if isinstance(reply, ToolCall) else tuple(reply)
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=len(calls))
    return Completion(tool_calls=calls, finish_reason="tool_calls", usage=usage, model=model)


def _count_words(text: str) -> int:
    # Test doubles count words as "tokens": deterministic and good enough for budgets.
    return len(text.split())


async def _stream_completion(completion: Completion) -> AsyncGenerator[StreamChunk, None]:
    for piece in re.findall(r"\S+\s*|\s+", completion.text):
        yield StreamChunk(delta=piece)
    yield StreamChunk(completion=completion)


class ScriptedBackend(Backend):
    """Replays scripted answers in order and records every request.

    Args:
        script: steps or bare replies, one per expected request.
        name: backend name (shows up in errors and traces).
        capabilities: what the double claims to support.

    Attributes:
        requests: every request received, in order.
    """

    def __init__(
        self,
        script: Sequence[Step | Reply],
        *,
        name: str = "scripted",
        capabilities: Capabilities = _ALL_CAPABILITIES,
    ) -> None:
        self.name = name
        self.capabilities = capabilities
        self._steps = [s if isinstance(s, Step) else Step(s) for s in script]
        self.requests: list[ChatRequest] = []

    @property
    def remaining(self) -> int:
        """How many scripted steps have not been used yet."""
        return len(self._steps) - len(self.requests)

    def assert_exhausted(self) -> None:
        """Fail unless every scripted step was used."""
        if self.remaining:
            raise AssertionError(f"{self.remaining} scripted step(s) of {self.name!r} never used")

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        index = len(self.requests)
        if index >= len(self._steps):
            raise ScriptExhausted(
                f"{self.name!r} got request {index + 1} but its script has {len(self._steps)} "
                f"step(s); last message: {request.messages[-1]!r}"
            )
        self.requests.append(request)
        step = self._steps[index]
        step.check(request, index)
        async for chunk in _stream_completion(_to_completion(step.reply, request, self.name)):
            yield chunk


class FunctionBackend(Backend):
    """Answers each request by calling a function (sync or async).

    The function receives the :class:`ChatRequest` and returns any :data:`Reply`.
    """

    def __init__(
        self,
        fn: Callable[[ChatRequest], Reply | Awaitable[Reply]],
        *,
        name: str = "function",
        capabilities: Capabilities = _ALL_CAPABILITIES,
    ) -> None:
        self.name = name
        self.capabilities = capabilities
        self._fn = fn
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        self.requests.append(request)
        reply = self._fn(request)
        if inspect.isawaitable(reply):
            reply = await reply
        async for chunk in _stream_completion(_to_completion(reply, request, self.name)):
            yield chunk
