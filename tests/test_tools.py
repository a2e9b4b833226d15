"""@tool schemas, argument validation, toolsets and the runtime's limits."""

import asyncio
import time

import pytest
from pydantic import BaseModel

from plait.errors import (
    BackendError,
    ConfigError,
    ToolArgumentError,
    ToolError,
    ToolPermissionError,
)
from plait.messages import ToolCall
from plait.tools import (
    Permissions,
    Tool,
    ToolLimits,
    ToolRunner,
    Toolset,
    json_schema_of,
    schema_tool,
    tool,
)


class Point(BaseModel):
    x: int
    y: int = 0


@tool
def move(point: Point, steps: int = 1, label: str | None = None) -> dict:
    """Move a point to the right.

    Args:
        point: where to start.
        steps: how far to go,
            in whole steps.
        label: an optional name.

    Returns:
        The new point.
    """
    return {"x": point.x + steps, "y": point.y, "label": label}


@tool(name="fetch", timeout_s=5, tags=("io",))
async def fetch_async(url: str) -> str:
    """Pretend to fetch a URL."""
    await asyncio.sleep(0)
    return f"got {url}"


def test_schema_comes_from_type_hints_models_and_docstring():
    assert move.name == "move"
    assert move.description == "Move a point to the right."
    params = move.parameters
    assert params["required"] == ["point"]
    assert params["additionalProperties"] is False
    # The pydantic model is inlined (no $ref), so the schema embeds anywhere.
    assert "$defs" not in params and "$ref" not in str(params)
    assert params["properties"]["point"]["properties"]["x"] == {"type": "integer"}
    assert params["properties"]["steps"]["description"] == "how far to go, in whole steps."
    assert params["properties"]["steps"]["default"] == 1
    assert "title" not in params
    spec = move.spec
    assert spec.name == "move" and spec.parameters == params


def test_decorator_options_and_async_tools():
    assert fetch_async.name == "fetch" and fetch_async.timeout_s == 5
    assert fetch_async.tags == {"io"} and fetch_async.is_async and not move.is_async
    assert asyncio.run(fetch_async.acall({"url": "u"})) == "got u"


def test_calling_the_tool_object_calls_the_function():
    assert move(Point(x=1), steps=2)["x"] == 3


async def test_acall_validates_and_converts_arguments():
    result = await move.acall('{"point": {"x": "4"}, "steps": 2}')
    assert result == {"x": 6, "y": 0, "label": None}


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ('{"point": {"x": "four"}}', "point.x"),
        ("{}", "point: Field required"),
        ('{"point": {"x": 1}, "color": "red"}', "color: Extra inputs are not permitted"),
        ("[1, 2]", "must be a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_invalid_arguments_name_every_problem(arguments, problem):
    with pytest.raises(ToolArgumentError) as info:
        move.validate(arguments)
    assert problem in str(info.value) and info.value.tool == "move"


def test_functions_that_cannot_be_tools_are_refused_clearly():
    def untyped(a):
        return a

    def variadic(*args: int) -> int:
        return 0

    with pytest.raises(ConfigError, match="'a' .* has no type hint"):
        tool(untyped)
    with pytest.raises(ConfigError, match="named parameters only"):
        tool(variadic)
    with pytest.raises(ConfigError, match="not allowed"):
        tool(name="has space")(move.fn)


def test_json_schema_of_inlines_nested_models():
    class Outer(BaseModel):
        points: list[Point]

    schema = json_schema_of(Outer)
    assert schema["properties"]["points"]["items"]["required"] == ["x"]
    assert "$defs" not in schema


def test_toolset_namespacing_filtering_and_combining():
    base = Toolset([move, fetch_async])
    assert base.names == ["move", "fetch"] and "move" in base and len(base) == 2
    spaced = base.namespaced("geo")
    assert spaced.names == ["geo.move", "geo.fetch"]
    assert spaced["geo.move"].fn is move.fn
    assert base.filter(tags=["io"]).names == ["fetch"]
    assert base.filter(names=["move"]).names == ["move"]
    assert base.filter(predicate=lambda t: t.is_async).names == ["fetch"]
    combined = base + spaced
    assert len(combined) == 4
    with pytest.raises(ConfigError, match="two tools are named 'move'"):
        _ = base + [move]
    with pytest.raises(ConfigError, match="unknown tool"):
        base.filter(names=["nope"])
    with pytest.raises(KeyError, match="no tool named 'nope'"):
        base["nope"]


def test_plain_functions_are_wrapped_in_toolsets():
    def double(n: int) -> int:
        """Double a number."""
        return 2 * n

    tools = Toolset([double])
    assert isinstance(tools["double"], Tool) and tools["double"].description == "Double a number."


# -- runtime ---------------------------------------------------------------------


@tool
def shout(text: str) -> str:
    """Repeat text loudly."""
    return text.upper() * 10


@tool
def slow_sync(seconds: float) -> str:
    """Sleep on a thread."""
    time.sleep(seconds)
    return "woke"


@tool
async def slow_async(seconds: float) -> str:
    """Sleep on the loop."""
    await asyncio.sleep(seconds)
    return "woke"


@tool
def broken() -> str:
    """Always fails."""
    raise RuntimeError("disk on fire")


async def test_runner_truncates_long_output_with_a_marker():
    runner = ToolRunner([shout], ToolLimits(max_output_chars=15))
    outcome = await runner.run(ToolCall(name="shout", arguments={"text": "abc"}))
    assert outcome.truncated and outcome.error is None
    assert outcome.content.startswith("ABC" * 5)
    assert "[... truncated 15 more characters]" in outcome.content


@pytest.mark.parametrize("slow", [slow_sync, slow_async])
async def test_runner_times_out_slow_tools(slow):
    runner = ToolRunner([slow], ToolLimits(timeout_s=0.05))
    outcome = await runner.run(ToolCall(name=slow.name, arguments={"seconds": 0.5}))
    assert outcome.error == "timeout"
    assert "timed out after 0.05 s" in outcome.content


async def test_runner_turns_failures_into_errors_the_model_reads():
    runner = ToolRunner([broken, shout])
    failed = await runner.run(ToolCall(name="broken"))
    assert failed.error == "failed" and "RuntimeError: disk on fire" in failed.content
    unknown = await runner.run(ToolCall(name="nope"))
    assert unknown.error == "unknown_tool" and "broken, shout" in unknown.content
    bad = await runner.run(ToolCall(name="shout", arguments={"txt": 1}))
    assert bad.error == "arguments" and "text: Field required" in bad.content


async def test_runner_reports_run_time_failures_and_raises_usage_errors():
    @tool
    def lookup(key: str) -> str:
        """Look a key up in a service.

        Args:
            key: the key.
        """
        if key == "down":
            raise BackendError("service is down")
        raise ConfigError("lookup: no service URL is configured")

    runner = ToolRunner([lookup])
    down = await runner.run(ToolCall(name="lookup", arguments={"key": "down"}))
    assert down.error == "failed" and "BackendError: service is down" in down.content
    # A usage error is not this call's failure: every call would fail the same way.
    with pytest.raises(ConfigError, match="no service URL"):
        await runner.run(ToolCall(name="lookup", arguments={"key": "x"}))


async def test_what_propagates_from_one_call_cancels_the_others():
    started, cancelled = asyncio.Event(), asyncio.Event()

    @tool
    async def wait_forever() -> str:
        """Never finish."""
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return "unreachable"

    @tool
    async def misconfigured() -> str:
        """Fail as a tool with a bad setup does."""
        await started.wait()
        raise ConfigError("misconfigured: bad setup")

    runner = ToolRunner([wait_forever, misconfigured])
    calls = [ToolCall(name="wait_forever"), ToolCall(name="misconfigured")]
    async with asyncio.timeout(30):  # guards against a hang only
        with pytest.raises(ConfigError, match="bad setup"):
            await runner.run_all(calls)
    assert cancelled.is_set()


async def test_concurrency_cap_is_enforced():
    running = 0
    peak = 0

    @tool
    async def track() -> str:
        """Count concurrent calls."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return "ok"

    runner = ToolRunner([track], ToolLimits(max_concurrency=2))
    outcomes = await runner.run_all([ToolCall(name="track") for _ in range(6)])
    assert [o.content for o in outcomes] == ["ok"] * 6
    assert peak == 2


async def test_permissions_by_agent_with_patterns():
    permissions = Permissions({"reader": ["files.read*"]}, default=())
    assert permissions.allows("reader", "files.read_file")
    assert not permissions.allows("reader", "files.write_file")
    assert not permissions.allows("stranger", "files.read_file")
    with pytest.raises(ToolPermissionError, match="'reader' is not permitted .*'files.write_file'"):
        permissions.check("reader", "files.write_file")

    ran = []

    @tool
    def write_file(text: str) -> str:
        """Write."""
        ran.append(text)
        return "written"

    runner = ToolRunner(Toolset([write_file]).namespaced("files"), permissions=permissions)
    outcome = await runner.run(
        ToolCall(name="files.write_file", arguments={"text": "x"}), agent="reader"
    )
    assert outcome.error == "permission" and ran == []
    assert runner.allowed("reader").names == []


def test_limits_are_checked():
    with pytest.raises(ConfigError):
        ToolLimits(timeout_s=0)


async def test_a_call_s_arguments_are_checked_once_on_either_path(monkeypatch):
    checked = []
    real = Tool.validate

    def counted(self, arguments):
        checked.append(self.name)
        return real(self, arguments)

    monkeypatch.setattr(Tool, "validate", counted)
    runner = ToolRunner([move])
    outcome = await runner.run(ToolCall(name="move", arguments={"point": {"x": 1}}))
    assert outcome.error is None and checked == ["move"]
    result = await runner.invoke("move", {"point": {"x": 1}, "steps": 2})
    assert result.value["x"] == 3 and checked == ["move", "move"]


async def test_invoke_raises_what_run_reports_as_text():
    runner = ToolRunner([move], permissions=Permissions({"guest": []}))
    with pytest.raises(ToolPermissionError, match="'guest' is not permitted to use tool 'move'"):
        await runner.invoke("move", {"point": {"x": 1}}, agent="guest")
    with pytest.raises(ToolArgumentError, match="point"):
        await runner.invoke("move", {"steps": 2})
    with pytest.raises(ToolError, match="there is no tool 'jump'"):
        await runner.invoke("jump", {})


async def test_a_schema_tool_with_an_async_function_runs_it_on_the_event_loop():
    loop = asyncio.get_running_loop()
    seen: list[dict] = []

    async def lookup(**arguments):
        assert asyncio.get_running_loop() is loop  # not sent to a worker thread
        seen.append(arguments)
        return "found"

    schema = {
        "type": "object",
        "properties": {"key": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["key"],
    }
    made = schema_tool("lookup", schema, fn=lookup)
    assert made.is_async
    assert await made.acall({"key": "a"}) == "found"
    assert seen == [{"key": "a"}]  # the optional argument left out is not passed


def test_a_schema_tool_with_a_recursive_type_is_refused_with_the_reason():
    schema = {
        "type": "object",
        "properties": {"tree": {"$ref": "#/$defs/Node"}},
        "$defs": {"Node": {"type": "object", "properties": {"children": {"$ref": "#/$defs/Node"}}}},
    }
    with pytest.raises(ConfigError, match="recursive type 'Node'"):
        schema_tool("walk", schema)
