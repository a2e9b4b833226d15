"""LangChain/LangGraph adapters, both directions, on the real libraries.

plait tools run inside a real LangGraph graph through ``ToolNode``; LangChain
tools run inside a plait agent (scripted model).
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool, ToolException
from langchain_core.tools import tool as lc_tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from pydantic import BaseModel, Field

from plait.agents import Agent
from plait.backends.testing import ScriptedBackend, Step
from plait.errors import ConfigError, ToolArgumentError, ToolError
from plait.messages import ToolCall
from plait.tools import (
    Permissions,
    ToolLimits,
    as_langchain_tool,
    as_langchain_tools,
    calculator,
    from_langchain,
    tool,
)


@tool
def shout(text: str, times: int = 1) -> str:
    """Repeat text in capitals.

    Args:
        text: what to shout.
        times: how often.
    """
    return " ".join([text.upper()] * times)


@tool
async def slow(seconds: float) -> str:
    """Wait, then answer."""
    await asyncio.sleep(seconds)
    return "done"


def graph_with(tools, calls):
    """model -> tools -> model -> end, where the 'model' replays ``calls`` then stops."""
    turns = iter([AIMessage(content="", tool_calls=calls), AIMessage(content="finished")])

    def model(state: MessagesState) -> dict:
        return {"messages": [next(turns)]}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    graph = StateGraph(MessagesState)
    graph.add_node("model", model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    return graph.compile()


def lc_call(name, args, id):
    return {"name": name, "args": args, "id": id, "type": "tool_call"}


async def test_plait_tools_run_in_a_langgraph_tool_node():
    tools = as_langchain_tools([shout, calculator])
    assert [t.name for t in tools] == ["shout", "calculator"]
    assert tools[0].args["times"]["description"] == "how often."
    graph = graph_with(
        tools,
        [
            lc_call("shout", {"text": "hey", "times": 2}, "c1"),
            lc_call("calculator", {"expression": "6 * 7"}, "c2"),
            lc_call("shout", {"times": "many"}, "c3"),
        ],
    )
    state = await graph.ainvoke({"messages": [HumanMessage(content="go")]})
    replies = {m.tool_call_id: m for m in state["messages"] if isinstance(m, ToolMessage)}
    assert replies["c1"].content == "HEY HEY" and replies["c1"].status == "success"
    assert "42" in replies["c2"].content
    # plait validated the arguments and its error text reached the model.
    assert replies["c3"].status == "error"
    assert "invalid arguments for tool 'shout'" in replies["c3"].content
    assert "text" in replies["c3"].content and "times" in replies["c3"].content
    assert state["messages"][-1].content == "finished"


async def test_plait_limits_and_permissions_hold_inside_langgraph():
    limits = ToolLimits(timeout_s=0.05, max_output_chars=5)
    permissions = Permissions({"bot": ["shout", "slow"]})
    tools = as_langchain_tools(
        [shout, slow, calculator], limits=limits, permissions=permissions, agent="bot"
    )
    assert [t.name for t in tools] == ["shout", "slow"]  # calculator is not the bot's
    graph = graph_with(
        tools,
        [lc_call("shout", {"text": "abcdefgh"}, "a"), lc_call("slow", {"seconds": 5}, "b")],
    )
    state = await graph.ainvoke({"messages": [HumanMessage(content="go")]})
    replies = {m.tool_call_id: m for m in state["messages"] if isinstance(m, ToolMessage)}
    assert replies["a"].content.startswith("ABCDE\n[... truncated 3 more")
    assert replies["b"].status == "error" and "timed out after 0.05 s" in replies["b"].content


def test_as_langchain_tool_refuses_a_runner_without_the_tool():
    from plait.tools import ToolRunner

    with pytest.raises(ConfigError, match="does not hold tool 'shout'"):
        as_langchain_tool(shout, runner=ToolRunner([calculator]))


class Box(BaseModel):
    width: float = Field(gt=0, description="width in cm")
    height: float = Field(gt=0, description="height in cm")
    unit: str = "cm"


def area(width: float, height: float, unit: str = "cm") -> str:
    """Area of a box."""
    return f"{width * height:g} {unit}^2"


async def fetch_stock(sku: str) -> int:
    """Units in stock for a SKU."""
    if sku == "gone":
        raise ToolException(f"SKU {sku!r} was discontinued")
    return {"A1": 12}.get(sku, 0)


def test_a_langchain_tool_keeps_its_schema_and_validates_arguments():
    wrapped = from_langchain(StructuredTool.from_function(area, args_schema=Box))
    params = wrapped.parameters
    assert params["required"] == ["width", "height"]
    assert params["properties"]["width"]["description"] == "width in cm"
    assert wrapped.description == "Area of a box."
    with pytest.raises(ToolArgumentError, match="width"):
        wrapped.validate({"width": -1, "height": 2})


async def test_sync_and_async_langchain_tools_run_and_map_errors():
    sync_tool = from_langchain(StructuredTool.from_function(area, args_schema=Box))
    assert await sync_tool.acall({"width": 2, "height": 3}) == "6 cm^2"
    async_tool = from_langchain(StructuredTool.from_function(coroutine=fetch_stock))
    assert await async_tool.acall('{"sku": "A1"}') == 12
    with pytest.raises(ToolError, match="discontinued"):
        await async_tool.acall({"sku": "gone"})


async def test_a_dict_schema_langchain_tool_is_checked_by_json_schema():
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"],
    }

    def forecast(city: str, days: int = 1) -> str:
        return f"{city}: {days} day(s) of sun"

    wrapped = from_langchain(
        StructuredTool.from_function(forecast, name="forecast", description="x", args_schema=schema)
    )
    assert await wrapped.acall({"city": "Rome"}) == "Rome: 1 day(s) of sun"
    with pytest.raises(ToolArgumentError, match="days: 0 is less than the minimum of 1"):
        wrapped.validate({"city": "Rome", "days": 0})


def test_from_langchain_refuses_what_is_not_a_langchain_tool():
    with pytest.raises(ConfigError, match="needs a langchain_core BaseTool"):
        from_langchain(area)  # type: ignore[arg-type]


async def test_a_plait_agent_uses_langchain_tools():
    @lc_tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    stock = from_langchain(StructuredTool.from_function(coroutine=fetch_stock))
    backend = ScriptedBackend(
        [
            [ToolCall(name="multiply", arguments={"a": 6, "b": "x"})],
            Step(
                [
                    ToolCall(name="multiply", arguments={"a": 6, "b": 7}),
                    ToolCall(name="fetch_stock", arguments={"sku": "gone"}),
                ],
                expect="invalid arguments for tool 'multiply'",
            ),
            Step("42, and that SKU is discontinued.", expect="discontinued"),
        ]
    )
    agent = Agent("shop", "Help.", backend, tools=[from_langchain(multiply), stock])
    result = await agent.arun("6 times 7? and is 'gone' in stock?")
    assert result.ok
    records = result.trace.tool_calls
    assert [(r.name, r.error) for r in records] == [
        ("multiply", "arguments"),
        ("multiply", None),
        ("fetch_stock", "failed"),
    ]
    assert records[1].result == "42"
    assert "discontinued" in records[2].result
