"""Local-backend pieces that need no model: stop strings, model files, tool envelopes."""

import json

import pytest

from plait import AssistantMessage, ChatRequest, SystemMessage, ToolCall, ToolMessage, ToolSpec
from plait.backends.local._model_file import check_gguf, default_model_path
from plait.backends.local._stops import StopScanner
from plait.backends.local._tool_calls import (
    envelope_schema,
    parse_envelope,
    plain_messages,
    prepare,
)
from plait.errors import ModelLoadError, ModelOutputError

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ADD = ToolSpec(
    name="add",
    parameters={"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}},
)


def feed_all(scanner: StopScanner, pieces: list[str]) -> str:
    return "".join(scanner.feed(p) for p in pieces) + scanner.flush()


def test_stop_scanner_cuts_at_a_stop_split_across_pieces():
    scanner = StopScanner(("END",))
    shown = [scanner.feed(p) for p in ["hello E", "N", "D and more"]]
    assert shown == ["hello ", "", ""]
    assert scanner.stopped


def test_stop_scanner_releases_held_text_that_was_not_a_stop():
    scanner = StopScanner(("END",))
    assert feed_all(scanner, ["an E", "xtra", " EN"]) == "an Extra EN"
    assert not scanner.stopped


def test_stop_scanner_uses_the_earliest_of_several_stops():
    assert feed_all(StopScanner(("\n\n", "###")), ["a ### b\n\nc"]) == "a "


def test_stop_scanner_without_stops_passes_text_through():
    assert feed_all(StopScanner(()), ["a", "b"]) == "ab"


def test_default_model_is_found_in_the_installed_wheel():
    path = default_model_path()
    assert path.name.endswith(".gguf") and path.exists()


def test_check_gguf_names_the_path_and_reason(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file") as info:
        check_gguf(tmp_path / "missing.gguf")
    assert "missing.gguf" in str(info.value)
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        check_gguf(corrupt)
    with pytest.raises(ModelLoadError, match="directory"):
        check_gguf(tmp_path)


def test_envelope_offers_calls_or_answer_when_choice_is_auto():
    schema = envelope_schema(ChatRequest.from_prompt("x", tools=(WEATHER, ADD)))
    calls, answer = schema["anyOf"]
    names = [
        item["properties"]["name"]["const"]
        for item in calls["properties"]["tool_calls"]["items"]["anyOf"]
    ]
    assert names == ["get_weather", "add"]
    assert answer["properties"]["answer"] == {"type": "string"}
    first = calls["properties"]["tool_calls"]["items"]["anyOf"][0]
    assert list(first["properties"]) == ["name", "arguments"]
    assert first["properties"]["arguments"]["additionalProperties"] is False


def test_envelope_closes_nested_objects_that_declare_their_keys():
    budget = {"type": "object", "properties": {"min": {"type": "number"}}}
    free = {"type": "object", "description": "subject -> score"}
    kept = {"type": "object", "properties": {"a": {"type": "number"}}, "additionalProperties": True}
    parameters = {
        "type": "object",
        "properties": {
            "budget": budget,
            "grades": free,
            "ranges": {"type": "array", "items": budget},
            "either": {"anyOf": [budget, {"type": "null"}]},
            "open": kept,
            "both": {"allOf": [budget, {"required": ["min"]}]},
        },
    }
    tool = ToolSpec(name="find", description="Find.", parameters=parameters)
    request = ChatRequest.from_prompt("x", tools=(tool,), tool_choice="required")
    arguments = envelope_schema(request)["properties"]["tool_calls"]["items"]["properties"][
        "arguments"
    ]
    properties = arguments["properties"]
    assert arguments["additionalProperties"] is False
    assert properties["budget"]["additionalProperties"] is False
    assert properties["ranges"]["items"]["additionalProperties"] is False
    assert properties["either"]["anyOf"][0]["additionalProperties"] is False
    # A mapping without declared keys stays free; an explicit choice is kept.
    assert "additionalProperties" not in properties["grades"]
    assert properties["open"]["additionalProperties"] is True
    assert "additionalProperties" not in properties["both"]["allOf"][0]
    assert "additionalProperties" not in budget  # the tool's own schema is not changed


def test_envelope_for_a_named_tool_allows_only_that_tool():
    request = ChatRequest.from_prompt("x", tools=(WEATHER, ADD), tool_choice="add")
    schema = envelope_schema(request)
    assert schema["properties"]["tool_calls"]["items"]["properties"]["name"] == {"const": "add"}


def test_envelope_allows_one_call_when_parallel_calls_are_off():
    request = ChatRequest.from_prompt("x", tools=(WEATHER,), tool_choice="required")
    assert envelope_schema(request)["properties"]["tool_calls"]["maxItems"] > 1
    one = request.model_copy(update={"parallel_tool_calls": False})
    assert envelope_schema(one)["properties"]["tool_calls"]["maxItems"] == 1


def test_envelope_answer_follows_the_response_schema():
    response = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    request = ChatRequest.from_prompt("x", tools=(ADD,), response_schema=response)
    assert envelope_schema(request)["anyOf"][1]["properties"]["answer"] == response
    text, calls, _ = parse_envelope('{"answer": {"n": 4}}', request, "stop")
    assert json.loads(text) == {"n": 4} and calls == ()


def test_parse_envelope_returns_calls_without_verbatim_repeats():
    request = ChatRequest.from_prompt("x", tools=(ADD,))
    raw = json.dumps({"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}] * 3})
    text, calls, finish = parse_envelope(raw, request, "stop")
    assert (text, finish, len(calls)) == ("", "tool_calls", 1)
    assert calls[0].parsed_arguments() == {"a": 1, "b": 2}


def test_parse_envelope_reports_truncation():
    request = ChatRequest.from_prompt("x", tools=(ADD,))
    with pytest.raises(ModelOutputError, match="cut off by max_tokens") as info:
        parse_envelope('{"tool_calls": [{"name": "ad', request, "length")
    assert info.value.raw.startswith('{"tool_calls"')


def test_plain_messages_keep_the_callers_system_prompt_first():
    request = ChatRequest(
        messages=(
            SystemMessage(content="You are the team's calculator."),
            AssistantMessage(tool_calls=(ToolCall(id="c1", name="add", arguments={"a": 1}),)),
            ToolMessage(content="3", tool_call_id="c1", name="add"),
        ),
        tools=(ADD,),
    )
    system, assistant, result = plain_messages(request)
    assert system.content.startswith("You are the team's calculator.\n\nYou can call tools.")
    assert json.loads(assistant.content) == {"tool_calls": [{"name": "add", "arguments": {"a": 1}}]}
    assert result.role == "user" and "Result of tool add (c1):\n3" == result.content


def test_plain_messages_without_tools_are_unchanged():
    request = ChatRequest.from_prompt("hi", system="s")
    assert plain_messages(request) == list(request.messages)


def test_prepare_decides_messages_schema_and_parser_once():
    response = {"type": "object", "properties": {"n": {"type": "integer"}}}
    plain = prepare(ChatRequest.from_prompt("hi", system="s", response_schema=response))
    assert plain.parse is None and plain.schema == response
    assert list(plain.messages) == plain_messages(ChatRequest.from_prompt("hi", system="s"))
    request = ChatRequest.from_prompt("x", system="s", tools=(ADD,))
    tools = prepare(request)
    assert tools.schema == envelope_schema(request)
    assert tools.messages[0].content.startswith("s\n\nYou can call tools.")
    assert tools.parse is not None
    text, calls, finish = tools.parse('{"tool_calls": [{"name": "add", "arguments": {}}]}', "stop")
    assert (text, finish, [c.name for c in calls]) == ("", "tool_calls", ["add"])
    none = prepare(ChatRequest.from_prompt("x", tools=(ADD,), tool_choice="none"))
    assert none.parse is None and none.schema is None
