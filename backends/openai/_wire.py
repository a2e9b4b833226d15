"""Translate plait requests to OpenAI chat-completions JSON and answers back.

Bodies are built field by field in one fixed order, and messages keep the
caller's order, so two requests sharing a conversation prefix serialize to
byte-identical prefixes: server-side prefix caches (vLLM, SGLang, llama.cpp)
can only hit on what is byte-stable.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from plait.chat import ChatRequest
from plait.completions import FinishReason, Usage
from plait.errors import BackendProtocolError
from plait.messages import AssistantMessage, Message, ToolCall, ToolMessage, UserMessage

from ._quote import quote

__all__ = [
    "SchemaMode",
    "chat_body",
    "finish_reason",
    "parse_tool_calls",
    "parse_usage",
    "wire_message",
]

SchemaMode = Literal["json_schema", "json_object"]
"""How ``response_schema`` is sent: OpenAI's ``json_schema`` response format, or
``json_object`` with the schema alongside (llama.cpp, llama-cpp-python, vLLM)."""

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "stop",
}


def wire_message(message: Message) -> dict[str, Any]:
    """One message as the chat-completions API expects it."""
    if isinstance(message, AssistantMessage):
        out: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
        return out
    if isinstance(message, ToolMessage):
        return {"role": "tool", "content": message.content, "tool_call_id": message.tool_call_id}
    if isinstance(message, UserMessage) and message.name:
        return {"role": "user", "content": message.content, "name": message.name}
    return {"role": message.role, "content": message.content}


def chat_body(
    request: ChatRequest,
    *,
    model: str,
    stream: bool,
    schema_mode: SchemaMode,
    stream_usage: bool,
    extra: dict[str, Any],
    send_priority: bool = False,
) -> dict[str, Any]:
    """The JSON body of a ``/chat/completions`` call for ``request``.

    ``send_priority``: include ``request.priority`` (vLLM/SGLang schedule by it).
    """
    body: dict[str, Any] = {"model": model, "messages": [wire_message(m) for m in request.messages]}
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
        choice = request.tool_choice
        if choice in ("auto", "none", "required"):
            body["tool_choice"] = choice
        else:
            body["tool_choice"] = {"type": "function", "function": {"name": choice}}
    if request.response_schema is not None:
        if schema_mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": request.response_schema},
            }
        else:
            body["response_format"] = {"type": "json_object", "schema": request.response_schema}
    for field in ("max_tokens", "temperature", "top_p", "seed"):
        value = getattr(request, field)
        if value is not None:
            body[field] = value
    if request.stop:
        body["stop"] = list(request.stop)
    if send_priority:
        body["priority"] = request.priority
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    body.update(extra)
    return body


def finish_reason(value: Any) -> FinishReason:
    """Map a server's ``finish_reason`` onto plait's (unknown or missing: ``stop``)."""
    return _FINISH.get(value, "stop") if isinstance(value, str) else "stop"


def parse_usage(data: Any) -> Usage:
    """Read a ``usage`` object, including cached prompt tokens when reported.

    OpenAI and vLLM report them as ``prompt_tokens_details.cached_tokens``;
    some llama.cpp builds as a top-level ``cached_tokens``.
    """
    if not isinstance(data, dict):
        return Usage()
    details = data.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if cached is None:
        cached = data.get("cached_tokens")
    try:
        return Usage(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            cached_prompt_tokens=int(cached or 0),
        )
    except (TypeError, ValueError) as e:
        shown = _quoted(data)
        raise BackendProtocolError(f"server sent an unreadable usage object: {shown}") from e


def parse_tool_calls(items: Any) -> tuple[ToolCall, ...]:
    """Read the ``tool_calls`` of a non-streamed assistant message."""
    if not items:
        return ()
    calls = []
    try:
        for item in items:
            function = item["function"]
            arguments = function.get("arguments") or "{}"
            if not isinstance(arguments, str):  # a few servers send an object
                arguments = _dump(arguments)
            fields: dict[str, Any] = {"name": function["name"], "arguments": arguments}
            if item.get("id"):
                fields["id"] = item["id"]
            calls.append(ToolCall(**fields))
    except (KeyError, TypeError, AttributeError) as e:
        raise BackendProtocolError(f"server sent a malformed tool call: {_quoted(items)}") from e
    return tuple(calls)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _quoted(value: Any) -> str:
    """A piece of a server payload as an error message shows it (cut, credentials blanked)."""
    return quote(json.dumps(value, ensure_ascii=False, default=str))
