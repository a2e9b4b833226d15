"""Tool selection for one model turn: the policy, the shortlist, examples, the call prompt,
and which of the calls the model wrote run, with which arguments.

The agent loop asks :func:`select_turn` before each turn that offers tools. The
policy comes from the agent (``tool_selection=``) or, by default, from
:func:`plait.tools.default_selection` for the turn's backend (the planner's
default is decided by the same function): one without native tool calls (the
local engine's constrained envelope, a small model) gets ``embedding``, the best
tool always fixed; a backend that calls tools natively (a served model) gets
``model``.

The prompt a selected turn adds comes last (after the shared system prompt and
the task), so prefixes shared between agents and turns stay shared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from plait.backends import Backend
from plait.chat import ToolChoice
from plait.completions import Completion
from plait.errors import ModelOutputError
from plait.memory import default_embedder
from plait.tools import (
    ExampleMatch,
    SelectionDecision,
    Tool,
    ToolSelection,
    ToolSelector,
    Toolset,
    default_selection,
    name_words,
)

from ._prompts import render

__all__ = [
    "LOCAL_DEFAULT",
    "TurnSelection",
    "grounded_arguments",
    "one_call",
    "plain_numbers",
    "resolve_selection",
    "select_turn",
    "settle_calls",
    "single_call",
]

LOCAL_DEFAULT = default_selection(native_tool_calls=False, role="agent")
"""The selection of backends without native tool calls, unless an agent says otherwise
(decided by :func:`plait.tools.default_selection`; kept here for reading only)."""


@dataclass(frozen=True)
class TurnSelection:
    """What selection decided for one turn.

    Attributes:
        tools: the tools the turn offers.
        choice: the turn's tool choice (a tool's name when the call is fixed
            and a call is required).
        decision: the decision, for the trace.
        prompt: a user message to add after the conversation (the request
            restated with the argument schema and examples), or ``""``.
    """

    tools: Toolset
    choice: ToolChoice
    decision: SelectionDecision
    prompt: str = ""


def resolve_selection(value: ToolSelection | str | None, backend: Backend) -> ToolSelection:
    """The selection a turn on ``backend`` uses (``None``: the backend's default)."""
    if value is not None:
        return ToolSelection.of(value)
    return default_selection(native_tool_calls=backend.capabilities.native_tool_calls, role="agent")


async def select_turn(
    selection: ToolSelection, request: str, tools: Toolset, choice: ToolChoice
) -> TurnSelection:
    """Choose the turn's tools for ``request`` and build its call prompt.

    A choice naming a tool (the caller fixed it) is left alone.
    """
    if choice not in ("auto", "required"):
        decision = SelectionDecision(
            policy=selection.policy, offered=tuple(tools.names), fixed=choice, reason="tool_choice"
        )
        return TurnSelection(tools, choice, decision)
    wants_examples = selection.examples > 0 and any(t.examples for t in tools)
    selector = None
    if selection.policy != "model" or wants_examples:
        # The default embedder loads its model on first use, not here: a turn
        # with one tool and no examples embeds nothing.
        selector = ToolSelector.for_embedder(selection.embedder or default_embedder())
    if selector is not None and selection.policy != "model":
        kept, decision = await selector.select(request, tools, selection)
    else:
        kept = tools
        decision = SelectionDecision(
            policy=selection.policy, offered=tuple(tools.names), reason="the model chooses"
        )
    examples: list[ExampleMatch] = []
    if selector is not None and wants_examples:
        examples = await selector.examples(request, list(kept), selection.examples)
        decision = decision.model_copy(
            update={"examples": tuple(m.example.request for m in examples)}
        )
    required = choice == "required"
    if decision.fixed is not None and required:
        choice = decision.fixed
    prompt = call_prompt(request, kept, decision, examples, required=required)
    return TurnSelection(kept, choice, decision, prompt)


def call_prompt(
    request: str,
    tools: Toolset,
    decision: SelectionDecision,
    examples: list[ExampleMatch],
    *,
    required: bool = True,
) -> str:
    """What a selected turn adds after the task ("" for the model's own choice).

    It shows the closest worked examples; when a call is required it restates
    the request and, for a fixed tool, lists that tool's arguments
    (descriptions, types, allowed values; optional ones to be left out unless
    the request gives them). When the model may answer without a tool
    (``tool_choice="auto"``) only the examples are shown: nothing asks for a call.
    """
    shown = ""
    if examples:
        lines = [
            render(
                "tool_example",
                request=m.example.request,
                call=json.dumps(
                    {"name": m.tool.name, "arguments": dict(m.example.arguments)},
                    ensure_ascii=False,
                ),
            )
            for m in examples
        ]
        shown = render("tool_examples", examples="\n".join(lines)) + "\n\n"
    if not required:
        return shown.strip()
    if decision.fixed is not None and decision.fixed in tools:
        fixed = tools[decision.fixed]
        prompt = shown + render(
            "tool_arguments",
            request=plain_numbers(request),
            tool=fixed.name,
            arguments=argument_lines(fixed) or "(none)",
        )
        # Asked only when the request enumerates items: said every time, a small
        # model repeats its one call over and over.
        if lists_several(request):
            prompt = prompt.rstrip("\n") + "\n" + render("tool_parallel")
        return prompt
    if decision.policy == "model" and not shown:
        return ""
    return shown + render("tool_choose", request=request, tools=", ".join(tools.names))


_ENUMERATION = re.compile(r"\w+(?:\s*,\s*\w+)+,?\s+(?:and|or)\s+\w+", re.IGNORECASE)


def lists_several(request: str) -> bool:
    """Whether the request enumerates items ("Paris, Rome and Oslo")."""
    return bool(_ENUMERATION.search(request))


def one_call(decision: SelectionDecision | None, request: str) -> bool:
    """Whether a turn may make only one call: its tool was fixed for a request naming one item."""
    return decision is not None and decision.fixed is not None and not lists_several(request)


def single_call(decision: SelectionDecision, request: str, completion: Completion) -> Completion:
    """The completion with only its first call when the tool was fixed for a request that
    names one item.

    A small model asked for one call often writes several with drifting
    arguments; the turn in the trace keeps every call it wrote, only the first
    runs. A request that enumerates items keeps all its calls.
    """
    if len(completion.tool_calls) < 2 or not one_call(decision, request):
        return completion
    return completion.model_copy(update={"tool_calls": completion.tool_calls[:1]})


def settle_calls(
    decision: SelectionDecision, request: str, tools: Toolset, completion: Completion
) -> Completion:
    """The calls of a turn whose tool selection fixed the tool, as they run.

    Only the first call runs for a request naming one item (:func:`single_call`),
    and each call keeps only the optional arguments the request states
    (:func:`grounded_arguments`). The turn in the trace keeps what the model wrote.
    """
    completion = single_call(decision, request, completion)
    if decision.fixed is None or not completion.tool_calls:
        return completion
    calls = []
    for call in completion.tool_calls:
        item = tools[call.name] if call.name in tools else None
        try:
            arguments = call.parsed_arguments()
        except ModelOutputError:
            arguments = None  # left as written: the tool call reports it
        if item is None or arguments is None:
            calls.append(call)
            continue
        kept = grounded_arguments(arguments, item.parameters, request)
        calls.append(
            call
            if kept == arguments
            else call.model_copy(update={"arguments": json.dumps(kept, ensure_ascii=False)})
        )
    return completion.model_copy(update={"tool_calls": tuple(calls)})


_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])")
_SCALED = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s+(thousand|million|billion)\b", re.IGNORECASE)
_SCALES = {"thousand": 3, "million": 6, "billion": 9}


def plain_numbers(text: str) -> str:
    """``text`` with numbers written as a JSON argument needs them.

    "200,000" becomes "200000" and "8.5 million" "8500000": a small model
    copying "$200,000" into a number argument wrote 200 (JSON numbers have no
    separators, so the grammar ended the number at the comma), and 213 for
    "213 million".
    """
    text = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)

    def scaled(match: re.Match[str]) -> str:
        value = Decimal(match.group(1)).scaleb(_SCALES[match.group(2).lower()])
        return format(value.normalize(), "f")

    return _SCALED.sub(scaled, text)


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def grounded_arguments(
    arguments: Mapping[str, Any], parameters: Mapping[str, Any], request: str
) -> dict[str, Any]:
    """``arguments`` without the optional ones whose value the request does not state.

    A small model fills optional parameters with values of its own ("unit":
    "imperial" for a height in cm); left out, the tool's default applies, which
    is what the request asked for. An optional argument stays when the request
    contains its value (a string as whole words, case-insensitive; a number among the
    request's numbers; every item of a list) or, for a value that cannot be
    quoted (a boolean, an object) or a string the request paraphrases, when the
    request names the parameter (a word of its name starts a word of the
    request). Required arguments always stay.
    """
    required = set(parameters.get("required", ()))
    text = request.casefold()
    numbers = {float(n) for n in _NUMBER.findall(plain_numbers(request))}

    def stated(value: Any) -> bool:
        if isinstance(value, bool) or value is None:
            return False
        if isinstance(value, (int, float)):
            try:
                return float(value) in numbers
            except OverflowError:  # an integer no request states
                return False
        if isinstance(value, str):
            phrase = " ".join(value.casefold().split())
            # Whole words only: "m" is not stated by "a community".
            return (
                bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None
            )
        if isinstance(value, list):
            return bool(value) and all(stated(v) for v in value)
        return False

    def named(name: str) -> bool:
        words = [w for w in name_words(name) if len(w) >= 3]
        return any(re.search(r"\b" + re.escape(w), text) for w in words)

    return {
        name: value
        for name, value in arguments.items()
        if name in required or stated(value) or named(name)
    }


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return f"array of {_type_of(schema['items'])}"
    if isinstance(kind, str):
        return kind
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        kinds = [_type_of(o) for o in options if isinstance(o, Mapping)]
        return " or ".join(k for k in kinds if k != "null") or "any"
    return "any"


def argument_lines(item: Tool) -> str:
    """One line per argument: name, type, required or optional, allowed values, description."""
    properties: Mapping[str, Any] = item.parameters.get("properties", {})
    required = set(item.parameters.get("required", ()))
    lines = []
    for name, schema in properties.items():
        if not isinstance(schema, Mapping):
            continue
        facts = [_type_of(schema), "required" if name in required else "optional"]
        enum = schema.get("enum")
        if isinstance(enum, list):
            facts.append("one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in enum))
        description = str(schema.get("description") or "").strip()
        line = f"- {name} ({'; '.join(facts)})"
        lines.append(f"{line}: {description}" if description else line)
    return "\n".join(lines)
