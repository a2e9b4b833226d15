"""Server-sent events: split a byte stream into JSON events and assemble the answer.

Chat-completion streams send ``data: {json}`` events and end with
``data: [DONE]``. Tool calls arrive in pieces keyed by ``index``: the first
piece names the call (id, function name), later ones append to its arguments.
With ``stream_options.include_usage`` the last event has no choices and only a
``usage`` object.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from plait.completions import FinishReason, Usage
from plait.errors import BackendHTTPError, BackendProtocolError
from plait.messages import ToolCall

from ._wire import finish_reason, parse_usage

__all__ = ["StreamAssembler", "sse_events"]


async def sse_events(lines: AsyncIterator[str], *, url: str) -> AsyncIterator[dict[str, Any]]:
    """Yield each ``data:`` event of an SSE stream as a JSON object, until ``[DONE]``.

    Raises:
        BackendProtocolError: an event is not a JSON object.
        BackendHTTPError: the server reported an error inside the stream.
    """
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r")
        if line:
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            # Comments (":"), "event:", "id:" and "retry:" lines carry nothing we use.
            continue
        if not data:
            continue
        payload = "\n".join(data)
        data = []
        if payload.strip() == "[DONE]":
            return
        yield _decode(payload, url)
    if data and "\n".join(data).strip() != "[DONE]":
        yield _decode("\n".join(data), url)


def _decode(payload: str, url: str) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except json.JSONDecodeError as e:
        raise BackendProtocolError(
            f"malformed server-sent event from {url}: {e.msg} in {payload[:200]!r}"
        ) from e
    if not isinstance(event, dict):
        raise BackendProtocolError(
            f"server-sent event from {url} is not a JSON object: {payload!r}"
        )
    if "error" in event and "choices" not in event:
        error = event["error"]
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        code = error.get("code") if isinstance(error, dict) else None
        raise BackendHTTPError(code if isinstance(code, int) else 500, message, url=url)
    return event


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAssembler:
    """Collects stream events into the final text, tool calls, finish reason and usage."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    def feed(self, event: dict[str, Any]) -> str:
        """Take one event; return the text it adds (may be empty)."""
        if isinstance(event.get("model"), str):
            self.model = event["model"]
        if event.get("usage"):
            self.usage = parse_usage(event["usage"])
        choices = event.get("choices") or []
        if not isinstance(choices, list):
            raise BackendProtocolError(f"stream event has non-list choices: {event!r}")
        added = ""
        for choice in choices:
            if not isinstance(choice, dict):
                raise BackendProtocolError(f"stream event has a malformed choice: {event!r}")
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.text.append(content)
                added += content
            for piece in delta.get("tool_calls") or []:
                self._feed_call(piece)
            if choice.get("finish_reason"):
                self.finish = finish_reason(choice["finish_reason"])
        return added

    def _feed_call(self, piece: Any) -> None:
        if not isinstance(piece, dict):
            raise BackendProtocolError(f"malformed tool-call delta: {piece!r}")
        index = piece.get("index", len(self.calls))
        call = self.calls.setdefault(index, _PartialCall())
        if piece.get("id"):
            call.id = piece["id"]
        function = piece.get("function") or {}
        if function.get("name"):
            call.name += function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            call.arguments.append(arguments)
        elif arguments is not None:
            call.arguments.append(json.dumps(arguments, ensure_ascii=False))

    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The assembled tool calls, in index order.

        Raises:
            BackendProtocolError: a call never received its function name.
        """
        calls = []
        for index in sorted(self.calls):
            partial = self.calls[index]
            if not partial.name:
                raise BackendProtocolError(f"streamed tool call {index} has no function name")
            fields: dict[str, Any] = {
                "name": partial.name,
                "arguments": "".join(partial.arguments) or "{}",
            }
            if partial.id:
                fields["id"] = partial.id
            calls.append(ToolCall(**fields))
        return tuple(calls)
