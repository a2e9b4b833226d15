"""``plait mcp FILE``: a workflow served over MCP, driven by the SDK's real client
(the command as a stdio subprocess, and over streamable HTTP on loopback)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _mcp_helpers import SERVER
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from plait.cli import main
from plait.graphs import read_run

WORKFLOW = """
name: adder
description: Adds two numbers and says the sum.
tools:
  calc: {{builtin: calculator}}
  inner:
    mcp: {{command: [{python}, my_server.py]}}
    include: [echo]
inputs:
  a: {{type: integer, description: the first number}}
  b: {{type: integer, default: 1}}
workflow:
  kind: steps
  steps:
    - {{id: total, tool: calculator, args: {{expression: "${{inputs.a}} + ${{inputs.b}}"}}}}
    - {{id: said, tool: echo, args: {{text: "the sum is ${{total}}"}}}}
"""


@pytest.fixture
def workflow_file(tmp_path: Path) -> Path:
    shutil.copy(SERVER, tmp_path / "my_server.py")
    path = tmp_path / "adder.yaml"
    path.write_text(textwrap.dedent(WORKFLOW.format(python=json.dumps(sys.executable))))
    return path


def plait_mcp(workflow_file: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "plait", "mcp", str(workflow_file), *extra]


def texts(result: object) -> str:
    return "\n".join(c.text for c in result.content)  # type: ignore[attr-defined]


async def check_session(client: Client, state_dir: Path) -> None:
    listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) == {"calculator", "echo", "adder"}
    adder = listed["adder"]
    assert adder.description.startswith("Adds two numbers")
    assert adder.input_schema["required"] == ["a"]
    assert adder.input_schema["properties"]["a"] == {
        "type": "integer",
        "description": "the first number",
    }
    # A plain tool, and a proxied one from the workflow's own MCP server.
    assert texts(await client.call_tool("calculator", {"expression": "6 * 7"})) == "42"
    assert texts(await client.call_tool("echo", {"text": "hi", "times": 2})) == "hi hi"
    bad = await client.call_tool("calculator", {"expr": "1"})
    assert bad.is_error and "expression" in texts(bad)
    # The workflow itself: inputs in, answer out, recorded as a run.
    ran = await client.call_tool("adder", {"a": 40, "b": 2})
    assert not ran.is_error, texts(ran)
    assert texts(ran) == "the sum is 42"
    missing = await client.call_tool("adder", {})
    assert missing.is_error and "input 'a' is required" in texts(missing)
    runs = list((state_dir / "runs").iterdir())
    assert len(runs) == 1
    assert read_run(runs[0].name, state_dir / "runs").answer == "the sum is 42"


async def test_stdio(workflow_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    params = StdioServerParameters(
        command=sys.executable,
        args=plait_mcp(workflow_file)[1:],
        env={**os.environ, "PLAIT_STATE_DIR": str(state)},
        cwd=tmp_path,
    )
    log = (tmp_path / "stderr.log").open("w")
    async with Client(stdio_client(params, errlog=log)) as client:
        await check_session(client, state)
    log.close()
    assert "plait mcp: serving" in (tmp_path / "stderr.log").read_text()


@pytest.fixture
def http_plait_mcp(workflow_file: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    state = tmp_path / "state"
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            plait_mcp(workflow_file, "--http", "--port", "0"),
            stdout=log,
            stderr=log,
            env={**os.environ, "PLAIT_STATE_DIR": str(state)},
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 120
            while not (
                found := re.search(r"at (http://127\.0\.0\.1:\d+/mcp)", log_path.read_text())
            ):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"plait mcp --http did not start: {log_path.read_text()}")
                time.sleep(0.2)
            yield found.group(1), state
        finally:
            process.terminate()
            process.wait(timeout=30)


async def test_http(http_plait_mcp: tuple[str, Path]) -> None:
    url, state = http_plait_mcp
    async with Client(url) as client:
        await check_session(client, state)


def test_port_needs_http(workflow_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mcp", str(workflow_file), "--port", "9000"]) == 2
    assert "--port needs --http" in capsys.readouterr().err
