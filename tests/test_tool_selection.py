"""Tool selection policies, tool examples and the call prompt, on scripted backends
with a deterministic keyword embedder (no model)."""

import json

import pytest

from plait.agents import Agent
from plait.agents._selection import resolve_selection
from plait.backends import Capabilities
from plait.backends.testing import ScriptedBackend, Step
from plait.errors import ConfigError, ToolArgumentError
from plait.messages import SystemMessage, ToolCall, UserMessage
from plait.tools import (
    ToolExample,
    ToolSelection,
    ToolSelector,
    Toolset,
    default_selection,
    schema_tool,
    tool,
)

WORDS = ["weather", "rain", "sum", "add", "number", "file", "read", "stock", "price"]


class KeywordEmbedder:
    """Vectors of keyword counts: similar texts share words; every call is recorded."""

    def __init__(self) -> None:
        self.documents: list[str] = []
        self.queries: list[str] = []

    @staticmethod
    def vector(text: str) -> list[float]:
        lowered = text.lower()
        return [lowered.count(w) + 0.01 for w in WORDS]

    async def embed_documents(self, texts):
        self.documents.extend(texts)
        return [self.vector(t) for t in texts]

    async def embed_queries(self, texts):
        self.queries.extend(texts)
        return [self.vector(t) for t in texts]


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """Weather and rain forecast for a city.

    Args:
        city: the city name.
        unit: celsius or fahrenheit.
    """
    return f"sunny in {city}"


@tool
def add_numbers(a: float, b: float) -> float:
    """Add two numbers: their sum."""
    return a + b


@tool
def read_file(path: str) -> str:
    """Read a file."""
    return "contents"


@tool
def stock_price(symbol: str) -> str:
    """The stock price of a company."""
    return "42"


TOOLS = [get_weather, add_numbers, read_file, stock_price]
LOCAL = Capabilities(native_tool_calls=False, json_schema_output=True)


def agent(backend, selection, *, tools=TOOLS, choice="required", **kwargs):
    return Agent(
        "helper",
        "Help.",
        backend,
        tools=tools,
        tool_choice=choice,
        tool_selection=selection,
        max_tool_rounds=1,
        **kwargs,
    )


async def test_embedding_fixes_the_tool_when_confident_and_the_model_fills_arguments():
    embedder = KeywordEmbedder()
    backend = ScriptedBackend([ToolCall(name="get_weather", arguments={"city": "Paris"}), "Sunny."])
    selection = ToolSelection(policy="embedding", margin=0.1, embedder=embedder)
    result = await agent(backend, selection).arun("Will it rain? Weather in Paris")
    first = backend.requests[0]
    assert [t.name for t in first.tools] == ["get_weather"]
    assert first.tool_choice == "get_weather"
    decision = result.trace.turns[0].selection
    assert decision is not None and decision.fixed == "get_weather"
    assert decision.policy == "embedding" and decision.threshold == 0.1
    assert decision.scores[0].tool == "get_weather" and len(decision.scores) == 4
    assert decision.margin == pytest.approx(decision.scores[0].score - decision.scores[1].score)
    assert decision.margin >= 0.1 and "leads by" in decision.reason
    # The request is restated with the fixed tool's arguments, after the task
    # and in the same user turn.
    prompt = first.messages[-1].content
    assert isinstance(first.messages[-1], UserMessage)
    assert prompt.startswith("Will it rain? Weather in Paris\n\nRequest: ")
    assert len(first.messages) == 2
    assert "Request: Will it rain? Weather in Paris" in prompt
    assert "- city (string; required): the city name." in prompt
    assert "- unit (string; optional): celsius or fahrenheit." in prompt
    # The trace is JSON and keeps the decision.
    dumped = json.loads(result.trace.model_dump_json())
    assert dumped["turns"][0]["selection"]["fixed"] == "get_weather"


async def test_embedding_below_its_margin_lets_the_model_choose_among_the_top_k():
    embedder = KeywordEmbedder()
    backend = ScriptedBackend([ToolCall(name="add_numbers", arguments={"a": 1, "b": 2}), "3"])
    selection = ToolSelection(policy="embedding", margin=5.0, k=2, embedder=embedder)
    result = await agent(backend, selection).arun("the sum of the weather numbers")
    first = backend.requests[0]
    decision = result.trace.turns[0].selection
    assert decision is not None and decision.fixed is None
    assert [t.name for t in first.tools] == [s.tool for s in decision.scores[:2]]
    assert decision.offered == tuple(t.name for t in first.tools)
    assert first.tool_choice == "required"
    assert "the model chooses among the top 2" in decision.reason
    assert result.trace.turns[0].offered_tools == decision.offered


async def test_hybrid_shortlists_k_best_first_and_fixes_only_above_its_margin():
    embedder = KeywordEmbedder()
    backend = ScriptedBackend([ToolCall(name="stock_price", arguments={"symbol": "X"}), "42"])
    selection = ToolSelection(policy="hybrid", k=2, fix_margin=None, embedder=embedder)
    result = await agent(backend, selection).arun("stock price of X")
    decision = result.trace.turns[0].selection
    assert decision is not None and decision.fixed is None and decision.threshold is None
    assert decision.offered[0] == "stock_price" and len(decision.offered) == 2
    assert [t.name for t in backend.requests[0].tools] == list(decision.offered)

    confident = ScriptedBackend([ToolCall(name="stock_price", arguments={"symbol": "X"}), "42"])
    selection = ToolSelection(policy="hybrid", k=2, fix_margin=0.1, embedder=embedder)
    result = await agent(confident, selection).arun("stock price of X")
    assert result.trace.turns[0].selection.fixed == "stock_price"
    assert confident.requests[0].tool_choice == "stock_price"


async def test_model_policy_embeds_nothing_and_offers_every_tool():
    embedder = KeywordEmbedder()
    backend = ScriptedBackend([ToolCall(name="read_file", arguments={"path": "a"}), "done"])
    selection = ToolSelection(policy="model", embedder=embedder)
    result = await agent(backend, selection).arun("read the file a")
    assert embedder.documents == [] and embedder.queries == []
    assert [t.name for t in backend.requests[0].tools] == [t.name for t in TOOLS]
    decision = result.trace.turns[0].selection
    assert decision is not None and decision.policy == "model" and decision.scores == ()
    # Nothing is added to the conversation for the model's own choice.
    assert backend.requests[0].messages[-1].content == "read the file a"


async def test_the_default_fixes_by_embedding_without_native_tool_calls_and_is_model_with_them():
    native = ScriptedBackend([ToolCall(name="read_file", arguments={"path": "a"}), "ok"])
    result = await agent(native, None).arun("read a")
    assert result.trace.turns[0].selection.policy == "model"

    local = ScriptedBackend(
        [ToolCall(name="read_file", arguments={"path": "a"}), "ok"], capabilities=LOCAL
    )
    embedder = KeywordEmbedder()
    import plait.tools._selection as selection_module

    previous = selection_module._LOCAL_AGENT_DEFAULT
    selection_module._LOCAL_AGENT_DEFAULT = ToolSelection(policy="hybrid", embedder=embedder)
    try:
        result = await agent(local, None).arun("read the file a")
    finally:
        selection_module._LOCAL_AGENT_DEFAULT = previous
    assert result.trace.turns[0].selection.policy == "hybrid"
    assert embedder.queries == ["read the file a"]
    assert default_selection(native_tool_calls=False, role="agent") == ToolSelection(
        policy="embedding", margin=0.0
    )


def test_one_function_decides_the_default_selection_of_agents_and_planners():
    assert default_selection(native_tool_calls=True, role="agent").policy == "model"
    assert default_selection(native_tool_calls=True, role="planner").policy == "model"
    # A plan often needs several tools: the planner's shortlist is never cut to one.
    assert default_selection(native_tool_calls=False, role="planner") == ToolSelection(
        policy="hybrid"
    )
    local = ScriptedBackend([], capabilities=LOCAL)
    assert resolve_selection(None, local) is default_selection(
        native_tool_calls=False, role="agent"
    )


async def test_tool_descriptions_are_embedded_once_per_embedder():
    embedder = KeywordEmbedder()
    selection = ToolSelection(policy="embedding", embedder=embedder)
    for city in ("Paris", "Oslo"):
        backend = ScriptedBackend([ToolCall(name="get_weather", arguments={"city": city}), "ok"])
        await agent(backend, selection).arun(f"weather in {city}")
    assert len(embedder.documents) == len(TOOLS)
    assert embedder.queries == ["weather in Paris", "weather in Oslo"]
    assert ToolSelector.for_embedder(embedder).embedded_documents == len(TOOLS)


async def test_one_tool_is_fixed_without_embedding_anything():
    embedder = KeywordEmbedder()
    backend = ScriptedBackend([ToolCall(name="read_file", arguments={"path": "a"}), "ok"])
    selection = ToolSelection(policy="hybrid", embedder=embedder)
    result = await agent(backend, selection, tools=[read_file]).arun("open a")
    assert result.trace.turns[0].selection.fixed == "read_file"
    assert backend.requests[0].tool_choice == "read_file"
    assert embedder.documents == [] and embedder.queries == []


async def test_a_tool_choice_naming_a_tool_is_left_alone():
    embedder = KeywordEmbedder()
    backend = ScriptedBackend([ToolCall(name="read_file", arguments={"path": "a"}), "ok"])
    selection = ToolSelection(policy="embedding", embedder=embedder)
    await agent(backend, selection, choice="read_file").arun("weather in Paris")
    assert backend.requests[0].tool_choice == "read_file"
    assert embedder.queries == []


async def test_the_call_prompt_is_not_added_over_tool_results():
    embedder = KeywordEmbedder()
    backend = ScriptedBackend(
        [
            ToolCall(name="get_weather", arguments={"city": "Paris"}),
            Step("Sunny.", expect=lambda r: "Request:" not in (r.messages[-1].content or "")),
        ]
    )
    selection = ToolSelection(policy="embedding", embedder=embedder)
    a = Agent("helper", "Help.", backend, tools=TOOLS, tool_selection=selection)
    result = await a.arun("weather in Paris")
    assert result.output == "Sunny."
    # Later rounds see every tool again (a task may need a second one).
    assert result.trace.turns[0].selection.fixed == "get_weather"
    assert result.trace.turns[1].selection is None
    assert len(backend.requests[1].tools) == len(TOOLS)


@tool(
    examples=[
        ("weather in Rome", {"city": "Rome"}),
        {"request": "is it going to rain in Oslo", "arguments": {"city": "Oslo"}},
        ToolExample(
            "weather and rain in Lima in fahrenheit", {"city": "Lima", "unit": "fahrenheit"}
        ),
        ("add the sum", {"city": "Bern"}),
    ]
)
def forecast(city: str, unit: str = "celsius") -> str:
    """Weather forecast for a city."""
    return city


async def test_examples_most_similar_to_the_request_come_first_after_the_shared_prompt():
    embedder = KeywordEmbedder()
    selection = ToolSelection(policy="embedding", examples=2, embedder=embedder)
    backend = ScriptedBackend([ToolCall(name="forecast", arguments={"city": "Paris"}), "ok"] * 2)
    a = agent(backend, selection, tools=[forecast, read_file])
    result = await a.arun("will it rain in Paris")
    await a.arun("weather in Kyiv")
    first, second = backend.requests[0], backend.requests[2]
    # The system prompt is the same for both tasks: examples come after it.
    assert isinstance(first.messages[0], SystemMessage)
    assert first.messages[0] == second.messages[0]
    assert "weather in Rome" not in first.messages[0].content
    prompt = first.messages[-1].content
    shown = result.trace.turns[0].selection.examples
    assert len(shown) == 2
    assert shown == ("is it going to rain in Oslo", "weather and rain in Lima in fahrenheit")
    assert prompt.index(shown[0]) < prompt.index(shown[1]) < prompt.index("Request: will it")
    assert '{"name": "forecast", "arguments": {"city": "Oslo"}}' in prompt


def test_tool_examples_are_checked_against_the_schema():
    with pytest.raises(ConfigError, match="tool 'bad', example 1: the arguments do not fit"):

        @tool(name="bad", examples=[("weather", {"town": "Paris"})])
        def bad(city: str) -> str:
            return city

    with pytest.raises(ConfigError, match="example 1: an example mapping needs 'request'"):
        tool(name="bad2", examples=[{"arguments": {}}])(lambda: "x")
    assert forecast.examples[2] == ToolExample(
        "weather and rain in Lima in fahrenheit", {"city": "Lima", "unit": "fahrenheit"}
    )


def test_schema_tools_validate_arguments_and_keep_examples():
    stub = schema_tool(
        "lookup",
        {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        description="Look something up.",
        examples=[("look up cats", {"q": "cats"})],
    )
    assert stub.validate({"q": "x"}) == {"q": "x"}
    with pytest.raises(ConfigError, match="tool 'lookup', example 2: .*not of type 'string'"):
        stub.with_examples([("bad", {"q": 3})])
    assert stub.examples[0].request == "look up cats"


async def test_schema_tools_take_properties_that_cannot_be_python_field_names():
    # A JSON Schema may name a property "_class", "schema" or "first-name";
    # each reaches the tool under its own name.
    seen: list[dict] = []
    stub = schema_tool(
        "profile",
        {
            "type": "object",
            "properties": {
                "_class": {"type": "string"},
                "schema": {"type": "integer"},
                "first-name": {"type": "string"},
                "property_0": {"type": "string"},
            },
            "required": ["_class"],
        },
        fn=lambda **kwargs: seen.append(kwargs),
    )
    await stub.acall({"_class": "mage", "first-name": "Ada", "property_0": "x"})
    assert seen == [{"_class": "mage", "first-name": "Ada", "property_0": "x"}]
    with pytest.raises(ToolArgumentError, match="'_class' is a required property"):
        stub.validate({"schema": 1})
    with pytest.raises(ToolArgumentError, match="schema: 'x' is not of type 'integer'"):
        stub.validate({"_class": "mage", "schema": "x"})


async def test_several_calls_of_one_tool_in_one_turn_all_run_in_order():
    embedder = KeywordEmbedder()
    calls = [ToolCall(name="get_weather", arguments={"city": c}) for c in ("Paris", "Rome", "Oslo")]
    backend = ScriptedBackend([calls, "All sunny."])
    selection = ToolSelection(policy="embedding", embedder=embedder)
    result = await agent(backend, selection).arun("weather in Paris, Rome and Oslo")
    assert [json.loads(r.arguments)["city"] for r in result.trace.tool_calls] == [
        "Paris",
        "Rome",
        "Oslo",
    ]
    assert "one call per item" in backend.requests[0].messages[-1].content


def test_unknown_policies_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match="use one of model, embedding, hybrid"):
        Agent("a", "b", ScriptedBackend([]), tool_selection="best")
    with pytest.raises(ConfigError, match="k must be at least 1"):
        ToolSelection(k=0)


async def test_selector_ranks_best_first_and_ties_keep_order():
    selector = ToolSelector(KeywordEmbedder())
    scores = await selector.rank("read the file", list(Toolset(TOOLS)))
    assert scores[0].tool == "read_file"
    ties = [s.tool for s in scores if s.score == scores[-1].score]
    assert ties == [t.name for t in TOOLS if t.name in ties]


async def test_the_repl_trace_view_shows_the_selection():
    from plait.cli.repl._render import render_last

    embedder = KeywordEmbedder()
    backend = ScriptedBackend([ToolCall(name="get_weather", arguments={"city": "Paris"}), "ok"])
    selection = ToolSelection(policy="embedding", embedder=embedder)
    result = await agent(backend, selection).arun("weather in Paris")
    view = render_last(result.trace)
    assert "tools: embedding: fixed get_weather, margin " in view
    assert "(get_weather " in view


def test_the_parallel_line_is_only_added_for_requests_that_enumerate():
    from plait.agents._selection import lists_several

    assert lists_several("the weather in Paris, Rome and Oslo")
    assert not lists_several("the weather in Paris")
    assert not lists_several("add 2 and 3")


async def test_a_fixed_tool_for_one_item_asks_the_backend_for_one_call_only():
    embedder = KeywordEmbedder()
    call = ToolCall(name="get_weather", arguments={"city": "Paris"})
    fixed = ToolSelection(policy="embedding", embedder=embedder)
    one = ScriptedBackend([call, "Sunny."])
    await agent(one, fixed).arun("weather in Paris")
    assert one.requests[0].parallel_tool_calls is False
    # A request listing items may need several calls; the model policy fixes nothing.
    several = ScriptedBackend([call, "Sunny."])
    await agent(several, fixed).arun("weather in Paris, Rome and Oslo")
    assert several.requests[0].parallel_tool_calls is None
    free = ScriptedBackend([call, "Sunny."])
    await agent(free, "model").arun("weather in Paris")
    assert free.requests[0].parallel_tool_calls is None


async def test_a_fixed_tool_runs_once_for_a_request_naming_one_item():
    embedder = KeywordEmbedder()
    calls = [ToolCall(name="get_weather", arguments={"city": c}) for c in ("Paris", "Pariss")]
    backend = ScriptedBackend([calls, "Sunny."])
    selection = ToolSelection(policy="embedding", embedder=embedder)
    result = await agent(backend, selection).arun("weather in Paris")
    # The turn keeps what the model wrote; only the first call ran.
    assert len(result.trace.turns[0].tool_calls) == 2
    assert [json.loads(r.arguments)["city"] for r in result.trace.tool_calls] == ["Paris"]


async def test_with_tool_choice_auto_nothing_asks_for_a_call():
    embedder = KeywordEmbedder()
    backend = ScriptedBackend(["Hello!"])
    selection = ToolSelection(policy="embedding", embedder=embedder)
    a = Agent("helper", "Help.", backend, tools=[read_file], tool_selection=selection)
    result = await a.arun("hello there")
    request = backend.requests[0]
    assert request.tool_choice == "auto" and [t.name for t in request.tools] == ["read_file"]
    assert request.messages[-1].content == "hello there"
    assert result.output == "Hello!"


async def test_the_planner_is_shown_the_selected_tools_and_the_round_records_it():
    from plait.graphs import LLMCompiler, tool_runner

    specs = [t.spec for t in TOOLS]

    def weather(city: str, unit: str = "celsius") -> str:
        return f"sunny in {city}"

    plan = json.dumps({"tasks": [{"tool": "get_weather", "args": {"city": "Paris"}}]})
    answer = json.dumps({"action": "finish", "answer": "sunny"})
    embedder = KeywordEmbedder()
    model = ScriptedBackend([plan, answer])
    compiler = LLMCompiler(
        model,
        specs,
        tool_runner({"get_weather": weather}),
        tool_selection=ToolSelection(policy="hybrid", k=2, embedder=embedder),
    )
    result = await compiler.arun("weather and rain in Paris")
    (round_,) = result.rounds
    assert round_.selection is not None and round_.selection.fixed is None
    assert round_.selection.offered[0] == "get_weather" and len(round_.selection.offered) == 2
    listing = model.requests[0].messages[0].content
    shown = [s.name for s in specs if f"- {s.name}(" in listing]
    assert shown == [s.name for s in specs if s.name in round_.selection.offered]

    # The default on a backend with native tool calls shows every tool.
    everything = ScriptedBackend([plan, answer])
    await LLMCompiler(everything, specs, tool_runner({"get_weather": weather})).arun("x")
    listing = everything.requests[0].messages[0].content
    assert all(f"- {s.name}(" in listing for s in specs)


async def test_the_callers_tools_are_ranked_against_the_planners_plan():
    from plait.agents import Roles

    embedder = KeywordEmbedder()
    plan = json.dumps({"next": "call_tool", "plan": "read the file notes"})
    backend = ScriptedBackend(
        [plan, ToolCall(name="read_file", arguments={"path": "notes"}), "done"]
    )
    selection = ToolSelection(policy="embedding", embedder=embedder)
    a = Agent(
        "helper", "Help.", backend, tools=TOOLS, tool_selection=selection, roles=Roles(),
        max_tool_rounds=1,
    )  # fmt: skip
    result = await a.arun("what did I write about the weather?")
    caller = next(t for t in result.trace.turns if t.role == "caller")
    assert caller.selection is not None and caller.selection.fixed == "read_file"
    assert embedder.queries == ["read the file notes"]


def test_optional_arguments_the_request_does_not_state_are_left_out():
    from plait.agents._selection import grounded_arguments

    parameters = {
        "type": "object",
        "properties": {
            "height": {"type": "number"},
            "unit": {"type": "string"},
            "round_to": {"type": "integer"},
            "detailed": {"type": "boolean"},
            "tags": {"type": "array"},
        },
        "required": ["height"],
    }
    request = "How tall is 180 cm in FEET, to 2 places? Red and blue."
    invented = {"height": 7, "unit": "imperial", "round_to": 3, "detailed": True, "tags": ["x"]}
    # Required arguments stay whatever they are; invented optional ones go.
    assert grounded_arguments(invented, parameters, request) == {"height": 7}
    stated = {"height": 180, "unit": "feet", "round_to": 2, "tags": ["red", "blue"]}
    assert grounded_arguments(stated, parameters, request) == stated
    # A value that cannot be quoted stays when the request names its parameter.
    assert grounded_arguments({"height": 1, "detailed": False}, parameters, "detailed: 1 m") == {
        "height": 1,
        "detailed": False,
    }
    # A word of the name must start a word of the request ("unit" is not in "community").
    assert grounded_arguments({"height": 1, "unit": "m"}, parameters, "a community") == {
        "height": 1
    }
    # Integers too large for a float are never stated.
    assert grounded_arguments({"height": 1, "round_to": 10**400}, parameters, "1 m") == {
        "height": 1
    }


async def test_a_fixed_tool_runs_without_the_optional_arguments_the_model_invented():
    embedder = KeywordEmbedder()
    call = ToolCall(name="get_weather", arguments={"city": "Paris", "unit": "kelvin"})
    selection = ToolSelection(policy="embedding", embedder=embedder)
    result = await agent(ScriptedBackend([call, "Sunny."]), selection).arun("weather in Paris")
    # The turn keeps what the model wrote; the call ran with the tool's default unit.
    assert json.loads(result.trace.turns[0].tool_calls[0].arguments)["unit"] == "kelvin"
    assert json.loads(result.trace.tool_calls[0].arguments) == {"city": "Paris"}
    stated = ToolCall(name="get_weather", arguments={"city": "Paris", "unit": "fahrenheit"})
    result = await agent(ScriptedBackend([stated, "Sunny."]), selection).arun(
        "weather in Paris in Fahrenheit"
    )
    assert json.loads(result.trace.tool_calls[0].arguments)["unit"] == "fahrenheit"
    # The model's own choice of tool is left as written.
    result = await agent(ScriptedBackend([call, "Sunny."]), "model").arun("weather in Paris")
    assert json.loads(result.trace.tool_calls[0].arguments)["unit"] == "kelvin"


def test_the_restated_request_writes_numbers_as_json_needs_them():
    from plait.agents._selection import plain_numbers

    assert plain_numbers("a house costing $200,000 for 1,000,000.5") == (
        "a house costing $200000 for 1000000.5"
    )
    assert plain_numbers("213 million people on 8.5 Million km2") == (
        "213000000 people on 8500000 km2"
    )
    # Lists and other commas are left alone.
    assert plain_numbers("coefficients 5, 20, and -25; ids 1,2,3; 12,34") == (
        "coefficients 5, 20, and -25; ids 1,2,3; 12,34"
    )


def test_a_stated_number_in_thousands_is_kept_as_an_optional_argument():
    from plait.agents._selection import grounded_arguments

    parameters = {"type": "object", "properties": {"cost": {"type": "number"}}}
    assert grounded_arguments({"cost": 200000}, parameters, "costing $200,000") == {"cost": 200000}
    assert grounded_arguments({"cost": 2000000}, parameters, "2 million in cost") == {
        "cost": 2000000
    }
    assert grounded_arguments({"cost": 200}, parameters, "a price of $200,000") == {}


async def test_the_call_prompt_restates_the_request_with_plain_numbers():
    embedder = KeywordEmbedder()
    backend = ScriptedBackend([ToolCall(name="stock_price", arguments={"symbol": "X"}), "ok"])
    selection = ToolSelection(policy="embedding", embedder=embedder)
    await agent(backend, selection).arun("stock price of X above 1,500")
    prompt = backend.requests[0].messages[-1].content
    assert "Request: stock price of X above 1500" in prompt
    assert prompt.startswith("stock price of X above 1,500")  # the task itself is as written
