"""Server-sent events: split a byte stream into JSON events and assemble the answer.

Chat-completion streams send ``data: {json}`` events and end with
``data: [DONE]``. Tool calls arrive in pieces keyed by ``index``: the first
piece names the call (id, function name), later ones append to its arguments.
With ``stream_options.include_usage`` the last event has no choices and only a
``usage`` object. A stream that ends without ``[DONE]`` was cut off (a proxy
or server dropped it cleanly): :func:`sse_events` raises
:class:`~plait.errors.BackendStreamTruncated` instead of passing a partial
answer off as complete.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from plait.completions import FinishReason, Usage
from plait.errors import BackendHTTPError, BackendProtocolError, BackendStreamTruncated
from plait.messages import ToolCall

from ._quote import quote
from ._wire import finish_reason, parse_usage

__all__ = ["StreamAssembler", "sse_events", "sse_lines"]


_NEWLINE = re.compile(r"\r\n|\r|\n")


async def sse_lines(
    chunks: AsyncIterator[bytes], *, max_bytes: int, url: str
) -> AsyncIterator[str]:
    """The lines of a UTF-8 byte stream (split at CRLF, CR or LF), at most ``max_bytes`` in all.

    Raises:
        BackendProtocolError: the stream passed ``max_bytes`` (naming the cap).
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    total = 0
    parts: list[str] = []  # pieces of the line being read
    after_cr = False
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise BackendProtocolError(
                f"the stream from {url} passed the response size cap of {max_bytes} bytes "
                "(max_response_bytes) and was cut off"
            )
        text = decoder.decode(chunk)
        if not text:
            continue  # only part of a UTF-8 character so far
        if after_cr and text[0] == "\n":
            text = text[1:]  # the LF of a CRLF split across two chunks
        after_cr = text.endswith("\r")
        start = 0
        for match in _NEWLINE.finditer(text):
            parts.append(text[start : match.start()])
            yield "".join(parts)
            parts = []
            start = match.end()
        parts.append(text[start:])
    rest = "".join(parts) + decoder.decode(b"", final=True)
    if rest:
        yield rest


async def sse_events(
    lines: AsyncIterator[str], *, url: str, secrets: Iterable[str] = ()
) -> AsyncIterator[dict[str, Any]]:
    """Yield each ``data:`` event of an SSE stream as a JSON object, until ``[DONE]``.

    Raises:
        BackendProtocolError: an event is not a JSON object.
        BackendHTTPError: the server reported an error inside the stream.
        BackendStreamTruncated: the stream ended without ``[DONE]`` (the answer is
            cut off); it carries no text here, the caller adds what it assembled.
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
        yield _decode(payload, url, secrets)
    if data:
        # The last event had no blank line after it: still an event.
        payload = "\n".join(data)
        if payload.strip() == "[DONE]":
            return
        yield _decode(payload, url, secrets)
    raise BackendStreamTruncated(url, "")


def _decode(payload: str, url: str, secrets: Iterable[str] = ()) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except json.JSONDecodeError as e:
        raise BackendProtocolError(
            f"malformed server-sent event from {url}: {e.msg} in {quote(payload, secrets)!r}"
        ) from e
    if not isinstance(event, dict):
        raise BackendProtocolError(
            f"server-sent event from {url} is not a JSON object: {quote(payload, secrets)!r}"
        )
    if "error" in event and "choices" not in event:
        error = event["error"]
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        code = error.get("code") if isinstance(error, dict) else None
        raise BackendHTTPError(
            code if isinstance(code, int) else 500, quote(str(message), secrets), url=url
        )
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
    secrets: tuple[str, ...] = ()

    def feed(self, event: dict[str, Any]) -> str:
        """Take one event; return the text it adds (may be empty)."""
        if isinstance(event.get("model"), str):
            self.model = event["model"]
        if event.get("usage"):
            self.usage = parse_usage(event["usage"])
        choices = event.get("choices") or []
        if not isinstance(choices, list):
            shown = _show(event, self.secrets)
            raise BackendProtocolError(f"stream event has non-list choices: {shown}")
        added = ""
        for choice in choices:
            if not isinstance(choice, dict):
                shown = _show(event, self.secrets)
                raise BackendProtocolError(f"stream event has a malformed choice: {shown}")
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
            raise BackendProtocolError(f"malformed tool-call delta: {_show(piece, self.secrets)}")
        index = piece.get("index", len(self.calls))
        call = self.calls.setdefault(index, _PartialCall())
        if piece.get("id"):
            call.id = piece["id"]
        function = piece.get("function") or {}
        name = function.get("name")
        # A piece may carry part of the name, or (llama-cpp-python's server) the
        # whole name again in every piece: a repeat is not appended.
        if name and name != call.name:
            call.name += name
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


def _show(value: Any, secrets: Iterable[str] = ()) -> str:
    """A decoded event as an error message shows it (cut, credentials blanked)."""
    return quote(json.dumps(value, ensure_ascii=False, default=str), secrets)
