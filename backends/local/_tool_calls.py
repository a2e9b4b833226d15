"""Tool calling for models without native support.

The model is shown the tools in its system prompt and its output is constrained
by a grammar (built from a JSON Schema) to one of two envelopes::

    {"tool_calls": [{"name": "<tool>", "arguments": {...}}, ...]}
    {"answer": <text, or a value matching the response schema>}

Tool names are constants and arguments follow each tool's own schema, so every
call the model emits names a real tool with well-formed arguments.

:func:`prepare` decides once per request what the model is shown, what its
decoding is constrained to and how its reply is read (:class:`PreparedRequest`);
the backend only passes that along.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plait.chat import ChatRequest, ToolSpec
from plait.completions import FinishReason
from plait.errors import ModelOutputError
from plait.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from plait.prompts import load_prompt

__all__ = [
    "PreparedRequest",
    "ReplyParser",
    "envelope_schema",
    "parse_envelope",
    "plain_messages",
    "prepare",
    "tool_prompt",
    "uses_envelope",
]

_MAX_CALLS_PER_TURN = 8


ReplyParser = Callable[[str, FinishReason], tuple[str, tuple[ToolCall, ...], FinishReason]]
"""Turns a finished reply and its finish reason into ``(text, tool_calls, finish_reason)``."""


@dataclass(frozen=True)
class PreparedRequest:
    """A request as the local model sees it, decided once by :func:`prepare`.

    Attributes:
        messages: what the chat template renders (tools folded into the system prompt).
        schema: the JSON Schema decoding is constrained to (``None``: free text).
        parse: reads the finished reply (``None``: the reply is the answer's text
            as it is, so it can be streamed while it is generated).
    """

    messages: tuple[Message, ...]
    schema: dict[str, Any] | None
    parse: ReplyParser | None


def prepare(request: ChatRequest) -> PreparedRequest:
    """Decide how the local model answers ``request``: plain text or the tool envelope."""
    if not uses_envelope(request):
        return PreparedRequest(
            messages=tuple(_rewrite(request, None)), schema=request.response_schema, parse=None
        )

    def parse(
        text: str, finish_reason: FinishReason
    ) -> tuple[str, tuple[ToolCall, ...], FinishReason]:
        return parse_envelope(text, request, finish_reason)

    return PreparedRequest(
        messages=tuple(_rewrite(request, tool_prompt(request))),
        schema=envelope_schema(request),
        parse=parse,
    )


def uses_envelope(request: ChatRequest) -> bool:
    """Whether the request needs the tool-call envelope (it offers tools)."""
    return bool(request.tools) and request.tool_choice != "none"


def _closed(schema: dict[str, Any], *, top: bool = True) -> dict[str, Any]:
    """``schema`` with its objects closed to keys they do not declare.

    Without additionalProperties=false the grammar lets a small model invent
    extra keys forever (or copy the parameter's own schema, ``{"type": ...}``,
    into the value); arguments are validated again by the tool anyway. Nested
    objects are closed when they declare properties: one without any is a
    free-form mapping. A schema that says ``additionalProperties`` is kept.
    """
    if not isinstance(schema, dict):
        return schema
    closed = dict(schema)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        closed["properties"] = {k: _closed(v, top=False) for k, v in properties.items()}
    if isinstance(schema.get("items"), dict):
        closed["items"] = _closed(schema["items"], top=False)
    # Not allOf: closing each part to its own keys would leave no object valid.
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            closed[key] = [_closed(s, top=False) for s in schema[key]]
    if (
        schema.get("type") == "object"
        and "additionalProperties" not in schema
        and (top or isinstance(properties, dict))
    ):
        closed["additionalProperties"] = False
    return closed


def _call_schema(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": _closed(tool.parameters)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def envelope_schema(request: ChatRequest) -> dict[str, Any]:
    """JSON Schema of every output the model may produce for this request."""
    tools = request.tools
    if request.tool_choice not in ("auto", "required"):
        tools = tuple(t for t in tools if t.name == request.tool_choice)
    calls = [_call_schema(t) for t in tools]
    calls_branch = {
        "type": "object",
        "properties": {
            "tool_calls": {
                "type": "array",
                "items": calls[0] if len(calls) == 1 else {"anyOf": calls},
                "minItems": 1,
                # One call when the caller asks for one: a small model otherwise
                # repeats its call until the token limit cuts the reply off.
                "maxItems": 1 if request.parallel_tool_calls is False else _MAX_CALLS_PER_TURN,
            }
        },
        "required": ["tool_calls"],
        "additionalProperties": False,
    }
    if request.tool_choice != "auto":
        return calls_branch
    answer_branch = {
        "type": "object",
        "properties": {"answer": request.response_schema or {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    return {"anyOf": [calls_branch, answer_branch]}


def tool_prompt(request: ChatRequest) -> str:
    """The system-prompt section that describes the tools and the reply forms."""
    template = load_prompt(__package__ or __name__, "tool_calling")
    tools = "\n".join(
        f"- {t.name}: {t.description or '(no description)'} "
        f"Arguments: {json.dumps(t.parameters.get('properties', {}))}"
        for t in request.tools
    )
    forms = ['{"tool_calls": [{"name": "<tool name>", "arguments": {...}}]} to call tools']
    if request.tool_choice == "auto":
        forms.append('{"answer": "<your final answer>"} when no tool is needed')
    return template.format(tools=tools, reply_forms="\n".join(forms)).strip()


def plain_messages(request: ChatRequest) -> list[Message]:
    """Messages rewritten for a chat template that knows no tools.

    The tool section joins the system prompt (after the caller's own text, so a
    shared system prompt stays a shared prefix); earlier tool calls become the
    JSON the model would have written, and tool results become user turns.
    """
    return list(prepare(request).messages)


def _rewrite(request: ChatRequest, section: str | None) -> list[Message]:
    out: list[Message] = []
    messages = list(request.messages)
    if section is not None:
        if messages and isinstance(messages[0], SystemMessage):
            first = messages.pop(0)
            out.append(SystemMessage(content=f"{first.content}\n\n{section}"))
        else:
            out.append(SystemMessage(content=section))
    for message in messages:
        if isinstance(message, AssistantMessage) and message.tool_calls:
            calls = [
                {"name": c.name, "arguments": c.parsed_arguments()} for c in message.tool_calls
            ]
            out.append(AssistantMessage(content=json.dumps({"tool_calls": calls})))
        elif isinstance(message, ToolMessage):
            label = f"tool {message.name}" if message.name else "tool"
            out.append(
                UserMessage(
                    content=f"Result of {label} ({message.tool_call_id}):\n{message.content}"
                )
            )
        else:
            out.append(message)
    return out


def parse_envelope(
    text: str, request: ChatRequest, finish_reason: FinishReason
) -> tuple[str, tuple[ToolCall, ...], FinishReason]:
    """Turn envelope JSON into ``(text, tool_calls, finish_reason)``.

    Raises:
        ModelOutputError: the output is not a complete envelope (usually because
            generation hit ``max_tokens`` mid-object).
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        why = "was cut off by max_tokens" if finish_reason == "length" else "is not valid JSON"
        raise ModelOutputError(f"the model's tool-call reply {why}", raw=text) from e
    if "tool_calls" in value:
        # Small models tend to repeat a call verbatim; a repeat adds nothing.
        unique = {json.dumps(c, sort_keys=True): c for c in value["tool_calls"]}
        calls = tuple(ToolCall(name=c["name"], arguments=c["arguments"]) for c in unique.values())
        return "", calls, "tool_calls"
    answer = value["answer"]
    if request.response_schema is None and isinstance(answer, str):
        return answer, (), finish_reason
    return json.dumps(answer, ensure_ascii=False), (), finish_reason
