import json

import pytest
from pydantic import TypeAdapter

from plait import (
    AssistantMessage,
    ChatRequest,
    Completion,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    Usage,
    UserMessage,
)
from plait.errors import ConfigError, ModelOutputError

ADD = ToolSpec(
    name="add",
    description="Add two numbers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
)


def test_messages_round_trip_through_json_by_role():
    messages = [
        SystemMessage(content="be brief"),
        UserMessage(content="2+3?"),
        AssistantMessage(tool_calls=(ToolCall(id="c1", name="add", arguments={"a": 2, "b": 3}),)),
        ToolMessage(content="5", tool_call_id="c1", name="add"),
        AssistantMessage(content="5"),
    ]
    adapter = TypeAdapter(list[Message])
    restored = adapter.validate_json(adapter.dump_json(messages))
    assert restored == messages
    assert [type(m) for m in restored] == [type(m) for m in messages]


def test_tool_call_keeps_arguments_as_json_text_and_parses_them():
    call = ToolCall(name="add", arguments={"a": 1, "b": 2})
    assert json.loads(call.arguments) == {"a": 1, "b": 2}
    assert call.parsed_arguments() == {"a": 1, "b": 2}
    assert call.id.startswith("call_")


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]"])
def test_tool_call_with_bad_arguments_raises_model_output_error_with_raw_text(raw):
    call = ToolCall(name="add", arguments=raw)
    with pytest.raises(ModelOutputError) as info:
        call.parsed_arguments()
    assert info.value.raw == raw
    assert "add" in str(info.value)


def test_chat_request_from_prompt_puts_system_first():
    request = ChatRequest.from_prompt("hi", system="be brief", max_tokens=5, agent="greeter")
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.max_tokens == 5 and request.agent == "greeter"


def test_chat_request_rejects_invalid_response_schema_naming_the_field():
    with pytest.raises(ConfigError) as info:
        ChatRequest.from_prompt("x", response_schema={"type": "no-such-type"})
    message = str(info.value)
    assert "response_schema" in message and "not a valid JSON Schema" in message


def test_chat_request_rejects_tool_choice_naming_an_unknown_tool():
    with pytest.raises(ConfigError, match="tool_choice 'mul' names no tool"):
        ChatRequest.from_prompt("x", tools=(ADD,), tool_choice="mul")


def test_chat_request_reports_every_bad_field_at_once():
    with pytest.raises(ConfigError) as info:
        ChatRequest(messages=(), max_tokens=0, temperature=5)
    message = str(info.value)
    for field in ("messages", "max_tokens", "temperature"):
        assert field in message


def test_tool_spec_rejects_invalid_parameter_schema():
    with pytest.raises(ValueError, match="tool parameters is not a valid JSON Schema"):
        ToolSpec(name="bad", parameters={"type": "object", "required": "a"})


def test_completion_message_and_json_helpers():
    completion = Completion(text='{"x": 1}', usage=Usage(prompt_tokens=3, completion_tokens=4))
    assert completion.parse_json() == {"x": 1}
    assert completion.message == AssistantMessage(content='{"x": 1}')
    assert completion.usage.total_tokens == 7
    with pytest.raises(ModelOutputError):
        Completion(text="not json").parse_json()


def test_usage_adds_up():
    total = Usage(prompt_tokens=10, cached_prompt_tokens=4, completion_tokens=2) + Usage(
        prompt_tokens=5, cached_prompt_tokens=5, completion_tokens=1
    )
    assert total == Usage(prompt_tokens=15, cached_prompt_tokens=9, completion_tokens=3)
    decoded = Usage(completion_tokens=9, forced_tokens=4, drafted_tokens=3, accepted_tokens=2)
    twice = decoded + decoded
    assert (twice.forced_tokens, twice.drafted_tokens, twice.accepted_tokens) == (8, 6, 4)


def test_usage_says_how_its_tokens_were_generated():
    assert Usage(completion_tokens=5).generated_text() == "5 generated"
    assert Usage(completion_tokens=9, forced_tokens=4).generated_text() == "9 generated (4 forced)"
    both = Usage(completion_tokens=20, forced_tokens=4, drafted_tokens=9, accepted_tokens=7)
    assert both.generated_text() == "20 generated (4 forced; 9 drafted, 7 accepted)"


def test_parse_json_accepts_raw_newlines_inside_strings():
    completion = Completion(text='{"a": "one\ntwo"}')
    assert completion.parse_json() == {"a": "one\ntwo"}
