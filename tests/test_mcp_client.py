"""MCP client: a real MCP server (tests/_mcp_server.py, the SDK's server API) over
stdio as a subprocess and over streamable HTTP on a loopback port."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _mcp_helpers import COMMAND, http_server

from plait import tracing
from plait.errors import ConfigError, ToolError
from plait.messages import ToolCall
from plait.tools import MCPClient, Permissions, ToolLimits, ToolRunner, mcp_tools

__all__ = ["http_server"]  # a fixture used here


def call(name: str, **arguments: object) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_lists_the_servers_tools_with_their_schemas() -> None:
    async with mcp_tools(COMMAND, name="test") as tools:
        assert {"add", "echo", "crash", "garbage"} <= set(tools.names)
        add = tools["add"]
        assert add.parameters["properties"] == {
            "a": {"type": "integer"},
            "b": {"type": "integer"},
        }
        assert add.parameters["required"] == ["a", "b"]
        assert add.description == "Add two integers."
        assert "mcp" in add.tags


async def test_calls_go_through_the_runner_rules() -> None:
    async with MCPClient(COMMAND, name="test") as client:
        runner = ToolRunner(
            await client.tools(),
            ToolLimits(max_output_chars=50),
            Permissions({"guest": ["add"]}),
        )
        done = await runner.run(call("add", a=2, b=40))
        assert (done.error, done.content) == (None, "42")
        # The server's input schema is checked before anything is sent.
        bad = await runner.run(call("add", a="two"))
        assert bad.error == "arguments"
        assert "'two' is not of type 'integer'" in bad.content
        assert "'b' is a required property" in bad.content
        refused = await runner.run(call("echo", text="hi"), agent="guest")
        assert refused.error == "permission"
        long = await runner.run(call("echo", text="word", times=40))
        assert long.truncated and "[... truncated" in long.content
        failed = await runner.run(call("fail", reason="on purpose"))
        assert failed.error == "failed"
        assert "MCP server 'test'" in failed.content and "on purpose" in failed.content


async def test_the_start_and_each_call_are_traced(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    with tracing.record_to(path):
        async with MCPClient(COMMAND, name="test") as client:
            runner = ToolRunner(await client.tools())
            await runner.run(call("add", a=1, b=1))
    spans = tracing.read_trace(path)
    assert [s["name"] for s in spans] == ["mcp_connect test", "execute_tool add"]


async def test_a_timeout_abandons_the_call_and_the_session_goes_on() -> None:
    async with MCPClient(COMMAND, name="test") as client:
        runner = ToolRunner(await client.tools(), ToolLimits(timeout_s=0.5))
        slow = await runner.run(call("slow", seconds=30))
        assert slow.error == "timeout"
        done = await runner.run(call("add", a=1, b=2))
        assert done.content == "3"


async def test_concurrent_calls_share_one_session() -> None:
    async with MCPClient(COMMAND, name="test") as client:
        runner = ToolRunner(await client.tools(), ToolLimits(max_concurrency=3))
        outcomes = await runner.run_all([call("pid") for _ in range(6)])
        assert len({o.content for o in outcomes}) == 1


async def test_a_crash_mid_call_is_a_tool_error_and_the_next_call_restarts_it() -> None:
    async with MCPClient(COMMAND, name="test") as client:
        runner = ToolRunner(await client.tools())
        first = (await runner.run(call("pid"))).content
        crashed = await runner.run(call("crash"))
        assert crashed.error == "failed"
        assert "MCP server 'test'" in crashed.content
        assert "exited or crashed" in crashed.content
        assert "crashing now" in crashed.content  # the server's stderr
        again = await runner.run(call("pid"))
        assert again.error is None and again.content != first


async def test_garbage_on_the_wire_is_a_tool_error_naming_the_server() -> None:
    async with MCPClient(COMMAND, name="test") as client:
        runner = ToolRunner(await client.tools(), ToolLimits(timeout_s=20))
        broken = await runner.run(call("garbage"))
        assert broken.error == "failed"
        assert "MCP server 'test' sent something that is not MCP" in broken.content
        assert "'this is not json-rpc'" in broken.content
        assert (await runner.run(call("add", a=1, b=1))).content == "2"


async def test_servers_that_cannot_start() -> None:
    with pytest.raises(ToolError, match="MCP server 'nope' could not be started: command"):
        async with mcp_tools(["plait-no-such-command"], name="nope"):
            pass
    chatty = [sys.executable, "-c", "print('hello'); import sys; sys.stderr.write('oops')"]
    with pytest.raises(ToolError) as info:
        async with mcp_tools(chatty, name="chatty"):
            pass
    assert "MCP server 'chatty' could not be started" in str(info.value)
    assert "'hello' is not JSON-RPC" in str(info.value)
    silent = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(ToolError, match="'silent' did not finish starting within 1 s"):
        async with mcp_tools(silent, name="silent", connect_timeout_s=1):
            pass


async def test_environment_and_working_directory(tmp_path: Path) -> None:
    os.environ["PLAIT_MCP_INHERITED"] = "from plait"
    try:
        async with MCPClient(
            COMMAND, name="test", cwd=tmp_path, env={"PLAIT_MCP_EXTRA": "extra"}
        ) as client:
            runner = ToolRunner(await client.tools())
            for name, value in [
                ("PLAIT_MCP_INHERITED", "from plait"),
                ("PLAIT_MCP_EXTRA", "extra"),
            ]:
                assert (await runner.run(call("environment", variable=name))).content == value
            where = (await runner.run(call("working_directory"))).content
            assert Path(where).resolve() == tmp_path.resolve()
    finally:
        del os.environ["PLAIT_MCP_INHERITED"]


async def test_include_and_exclude() -> None:
    async with mcp_tools(COMMAND, include=["echo", "add"]) as tools:
        assert tools.names == ["echo", "add"]
    async with mcp_tools(COMMAND, exclude=["crash", "garbage"]) as tools:
        assert "crash" not in tools and "add" in tools
    with pytest.raises(ConfigError, match=r"has no tool\(s\) 'substract'; it offers: add"):
        async with mcp_tools(COMMAND, include=["substract"]):
            pass


async def test_closing_stops_the_server_process() -> None:
    client = MCPClient(COMMAND, name="test")
    runner = ToolRunner(await client.tools())
    pid = int((await runner.run(call("pid"))).content)
    assert alive(pid)
    await client.aclose()
    assert not alive(pid)


def test_blocking_use_lists_in_its_own_session_and_calls_in_the_runs_loop() -> None:
    client = MCPClient(COMMAND, name="test")
    tools = client.tools_sync()
    assert "add" in tools

    async def one_run() -> tuple[str, int]:
        runner = ToolRunner(tools)
        return (await runner.run(call("add", a=3, b=4))).content, int(
            (await runner.run(call("pid"))).content
        )

    answer, pid = asyncio.run(one_run())
    assert answer == "7"
    assert not alive(pid)  # the session ended with the run's event loop


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="exactly one of 'command'"):
        MCPClient()
    with pytest.raises(ConfigError, match="exactly one of 'command'"):
        MCPClient(["x"], url="http://127.0.0.1:1/mcp")
    with pytest.raises(ConfigError, match="non-empty list of strings"):
        MCPClient("python server.py")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must start with http"):
        MCPClient(url="ftp://example.com")


async def test_http_server_with_a_header_from_the_environment(
    http_server: tuple[str, subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = http_server
    monkeypatch.setenv("PLAIT_TEST_MCP_TOKEN", "Bearer s3cret")
    async with MCPClient(
        url=url, name="web", headers_env={"Authorization": "PLAIT_TEST_MCP_TOKEN"}
    ) as client:
        runner = ToolRunner(await client.tools(), ToolLimits(timeout_s=0.5))
        assert (await runner.run(call("add", a=20, b=22))).content == "42"
        assert (await runner.run(call("slow", seconds=30))).error == "timeout"
        failed = await runner.run(call("fail", reason="over http"))
        assert failed.error == "failed" and "over http" in failed.content


async def test_http_errors_name_the_server(
    http_server: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = http_server
    with pytest.raises(ToolError, match="MCP server 'web' could not be started: .*HTTP 401"):
        async with mcp_tools(url=url, name="web"):
            pass
    with pytest.raises(ConfigError, match="environment variable 'PLAIT_TEST_UNSET_VARIABLE'"):
        async with mcp_tools(url=url, headers_env={"Authorization": "PLAIT_TEST_UNSET_VARIABLE"}):
            pass
    async with MCPClient(url=url, name="web", headers={"Authorization": "Bearer s3cret"}) as client:
        runner = ToolRunner(await client.tools())
        crashed = await runner.run(call("crash"))
        assert crashed.error == "failed" and "MCP server 'web'" in crashed.content
        process.wait()
        gone = await runner.run(call("add", a=1, b=1))
        assert gone.error == "failed"
        assert "MCP server 'web' could not be started: cannot connect" in gone.content
