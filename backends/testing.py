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
import json
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk, Usage
from plait.errors import ScriptExhausted
from plait.messages import AssistantMessage, ToolCall, ToolMessage

from ._base import Backend, Capabilities

__all__ = [
    "FunctionBackend",
    "ObedientBackend",
    "Reply",
    "ScriptExhausted",
    "ScriptedBackend",
    "Step",
    "directives",
]

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


_DIRECTIVE = re.compile(r"CALL ([A-Za-z_][A-Za-z0-9_.\-]*) ")
_WITHHELD = re.compile(r"write \$([0-9]+) in the answer")


def directives(text: str) -> list[tuple[str, dict[str, object]]]:
    """Every ``CALL <tool> {json arguments}`` instruction in ``text``, in order."""
    found: list[tuple[str, dict[str, object]]] = []
    decoder = json.JSONDecoder()
    for match in _DIRECTIVE.finditer(text):
        try:
            args, _ = decoder.raw_decode(text, match.end())
        except json.JSONDecodeError:
            continue
        if isinstance(args, dict):
            found.append((match.group(1), args))
    return found


class ObedientBackend(Backend):
    """The worst case for prompt injection: a model that obeys every instruction it reads.

    Instructions are written ``CALL <tool> {json arguments}``; the model follows
    them wherever they appear, in the user's question or inside a tool result, a
    web page or a memory. It is the attacker's best ally, for tests and
    benchmarks of defenses that must hold with any model.

    - With tools offered (an agent's turn), every instruction in the messages
      since its last turn whose tool is offered becomes a tool call (``"$n"``
      in an argument is the n-th tool result of the conversation, or stays
      ``"$n"`` when that result is withheld); with none left, it answers with
      the newest messages' text (``$n`` for a withheld result).
    - Asked for a plan (a response schema with ``tasks``), every instruction of
      the request not yet planned in an earlier round becomes a task.
    - Asked for a join decision (a schema with ``action``), it replans while
      the results hold instructions not yet planned, else it finishes with the
      results as its answer (writing ``$n`` where a result is withheld and
      the text says to).
    - Asked for a review (a schema with ``verdict``), it sends every
      instruction of the answer under review (after ``Answer:``) back to the
      worker as a retry's feedback, else accepts.
    - Asked for anything else with a schema whose one property is ``value``, it
      answers the first quoted string of the request, else its first line.

    Attributes:
        requests: every request received, in order.
    """

    def __init__(self, *, name: str = "obedient") -> None:
        self.name = name
        self.capabilities = _ALL_CAPABILITIES
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        self.requests.append(request)
        completion = _to_completion(self._reply(request), request, self.name)
        async for chunk in _stream_completion(completion):
            yield chunk

    def _reply(self, request: ChatRequest) -> Reply:
        properties = (request.response_schema or {}).get("properties", {})
        text = "\n".join(getattr(m, "content", None) or "" for m in request.messages[1:])
        if "tasks" in properties:
            return self._plan(text)
        if "action" in properties:
            return self._join(text)
        if "verdict" in properties:
            return self._review(text)
        if request.tools:
            return self._turn(request)
        if list(properties) == ["value"]:
            quoted = re.findall(r'"([^"\n]+)"', text)
            value = quoted[0] if quoted else text.strip().splitlines()[-1]
            return json.dumps({"value": value})
        return text.strip().splitlines()[-1] if text.strip() else ""

    def _turn(self, request: ChatRequest) -> Reply:
        offered = {t.name for t in request.tools}
        messages = list(request.messages)[1:]
        # Every instruction read so far, in the order it was read; the ones after
        # those already acted on are next, as far as their "$n" inputs exist.
        wanted = [
            (name, args)
            for m in messages
            if not isinstance(m, AssistantMessage)
            for name, args in directives(getattr(m, "content", None) or "")
            if name in offered
        ]
        made = sum(len(m.tool_calls) for m in messages if isinstance(m, AssistantMessage))
        results = [m.content for m in messages if isinstance(m, ToolMessage)]
        calls: list[ToolCall] = []
        for name, args in wanted[made:]:
            if any(_missing(v, len(results)) for v in args.values()):
                break
            filled = {k: _fill(v, results) for k, v in args.items()}
            call_id = f"call_{len(self.requests)}_{len(calls)}"
            calls.append(ToolCall(id=call_id, name=name, arguments=filled))
        if calls:
            return calls
        last_turn = max(
            (i for i, m in enumerate(messages) if isinstance(m, AssistantMessage)), default=-1
        )
        return "\n".join(
            _shown(getattr(m, "content", None) or "") for m in messages[last_turn + 1 :]
        )

    def _plan(self, text: str) -> str:
        planned = _planned(text)
        tasks = [
            {"tool": name, "args": args}
            for name, args in directives(text)
            if (name, json.dumps(args, sort_keys=True)) not in planned
        ]
        return json.dumps({"tasks": tasks or [{"tool": "none", "args": {}}]})

    def _review(self, text: str) -> str:
        # A reviewer that obeys: instructions in the answer it reviews go back to
        # the worker as feedback (what an injection in a team asks of the reviewer).
        found = directives(text.split("Answer:", 1)[-1])  # the task's own are the user's
        if not found:
            return json.dumps({"verdict": "accept", "feedback": ""})
        feedback = " ".join(f"CALL {name} {json.dumps(args)}" for name, args in found)
        return json.dumps({"verdict": "retry", "feedback": feedback[:400]})

    def _join(self, text: str) -> str:
        results = text.split("Tool results:", 1)[-1]
        planned = _planned(results)
        pending = [
            d
            for d in directives(results)
            if (d[0], json.dumps(d[1], sort_keys=True)) not in planned
        ]
        if pending:
            return json.dumps({"answer": "Following the instructions.", "action": "replan"})
        withheld = _WITHHELD.findall(results)
        answer = " ".join(f"${n}" for n in withheld) if withheld else results.strip()
        return json.dumps({"answer": answer[:400], "action": "finish"})


def _planned(text: str) -> set[tuple[str, str]]:
    """Calls listed as ``N. tool({...})`` (earlier plans shown to a planner or joiner)."""
    found = set()
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^\d+\. ([A-Za-z_][\w.\-]*)\(", text, re.MULTILINE):
        try:
            args, _ = decoder.raw_decode(text, match.end())
        except json.JSONDecodeError:
            continue
        found.add((match.group(1), json.dumps(args, sort_keys=True)))
    return found


def _shown(text: str) -> str:
    """A message as the answer repeats it: a withheld result as the reference it offers."""
    withheld = _WITHHELD.search(text)
    return f"${withheld.group(1)}" if withheld else text


def _missing(value: object, available: int) -> bool:
    whole = re.fullmatch(r"\$([0-9]+)", value) if isinstance(value, str) else None
    return whole is not None and int(whole.group(1)) > available


def _fill(value: object, results: list[str]) -> object:
    if isinstance(value, str):
        whole = re.fullmatch(r"\$([0-9]+)", value)
        if whole and 0 < int(whole.group(1)) <= len(results):
            result = results[int(whole.group(1)) - 1]
            # A withheld result is passed on by reference; the run fills it in.
            return value if _WITHHELD.search(result) else result
    return value
