"""MCP servers in workflow files: ``tools: NAME: {mcp: {command | url}}``, run for real."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _mcp_helpers import SERVER, TOKEN, http_server

from plait.backends.testing import ScriptedBackend, Step
from plait.chat import ChatRequest
from plait.errors import ConfigError, WorkflowValidationError
from plait.graphs import load_workflow, validate_workflow
from plait.messages import ToolCall

__all__ = ["http_server"]  # a fixture used here

PYTHON = json.dumps(sys.executable)


def write(folder: Path, text: str, name: str = "wf.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with the test server's script next to where the workflow file goes."""
    shutil.copy(SERVER, tmp_path / "my_server.py")
    return tmp_path


STEPS = f"""
tools:
  calc:
    mcp:
      command: [{PYTHON}, my_server.py]
      env: {{PLAIT_MCP_GREETING: "hello from the file"}}
    include: [add, echo, environment, working_directory]
workflow:
  kind: steps
  steps:
    - {{id: total, tool: add, args: {{a: 2, b: 3}}}}
    - {{id: said, tool: echo, args: {{text: "total ${{total}}"}}}}
    - {{id: greeting, tool: environment, args: {{variable: PLAIT_MCP_GREETING}}}}
    - {{id: folder, tool: working_directory}}
  output: "${{said}} / ${{greeting}} / ${{folder}}"
"""


async def test_a_steps_workflow_calls_a_stdio_server_next_to_the_file(project: Path) -> None:
    workflow = load_workflow(write(project, STEPS), runs_dir=project / "runs")
    result = await workflow.arun()
    assert result.ok, result.error
    said, greeting, folder = result.answer.split(" / ")
    assert said == "total 5"
    assert greeting == "hello from the file"
    assert Path(folder).resolve() == project.resolve()  # the command ran in the file's folder


async def test_an_agent_sees_and_calls_the_servers_tools(project: Path) -> None:
    text = f"""
    tools:
      calc:
        mcp: {{command: [{PYTHON}, my_server.py]}}
        exclude: [crash, garbage]
    agents:
      helper:
        instructions: You add numbers with the tools.
        tools: [calc]
    workflow:
      kind: steps
      steps:
        - {{id: answer, agent: helper, input: "What is 2 plus 40?"}}
    """

    def offers_add(request: ChatRequest) -> bool:
        names = {t.name for t in request.tools}
        return "add" in names and "crash" not in names

    backend = ScriptedBackend(
        [
            Step(ToolCall(name="add", arguments={"a": 2, "b": 40}), expect=offers_add),
            Step("It is 42.", expect="42"),
        ],
    )
    workflow = load_workflow(
        write(project, text), backends={"default": backend}, runs_dir=project / "runs"
    )
    # Its tools are listed when a run starts its server: it is built then, once per run.
    assert "helper" not in workflow.agents
    result = await workflow.arun()
    assert result.ok, result.error
    assert result.answer == "It is 42."
    backend.assert_exhausted()


async def test_a_crash_fails_its_step_and_the_run_goes_on(project: Path) -> None:
    text = f"""
    tools:
      calc: {{mcp: {{command: [{PYTHON}, my_server.py]}}}}
    workflow:
      kind: steps
      steps:
        - {{id: boom, tool: crash, continue_on_error: true}}
        - {{id: after, tool: add, args: {{a: 1, b: 1}}, depends_on: [boom]}}
    """
    result = await load_workflow(write(project, text), runs_dir=project / "runs").arun()
    assert result.ok is False  # a step failed...
    assert result.results["after"] == "2"  # ...and the server was restarted for the next one
    record = json.loads((Path(result.run_dir) / "run.json").read_text())
    assert "MCP server 'calc'" in record["steps"]["boom"]


async def test_a_server_that_cannot_start_fails_the_run_with_its_name(project: Path) -> None:
    text = """
    tools:
      broken: {mcp: {command: [plait-no-such-command]}}
    workflow:
      kind: steps
      steps:
        - {id: one, tool: add, args: {a: 1, b: 1}}
    """
    result = await load_workflow(write(project, text), runs_dir=project / "runs").arun()
    assert result.status == "failed"
    assert "MCP server 'broken' could not be started" in str(result.error)


async def test_a_step_naming_a_tool_no_server_lists(project: Path) -> None:
    text = f"""
    tools:
      calc: {{mcp: {{command: [{PYTHON}, my_server.py]}}}}
    workflow:
      kind: steps
      steps:
        - {{id: one, tool: substract, args: {{a: 1, b: 1}}}}
    """
    workflow = load_workflow(write(project, text), runs_dir=project / "runs")
    with pytest.raises(ConfigError, match="step 'one' calls tool 'substract'.*tools: add"):
        await workflow.arun()


async def test_http_server_with_a_header_from_the_environment(
    tmp_path: Path,
    http_server: tuple[str, subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = http_server
    monkeypatch.setenv("PLAIT_TEST_MCP_TOKEN", TOKEN)
    text = f"""
    tools:
      web:
        mcp:
          url: {url}
          headers: {{Authorization: "Bearer ${{PLAIT_TEST_MCP_TOKEN}}"}}
        include: [add]
    workflow:
      kind: steps
      steps:
        - {{id: sum, tool: add, args: {{a: 40, b: 2}}}}
    """
    result = await load_workflow(write(tmp_path, text), runs_dir=tmp_path / "runs").arun()
    assert result.ok, result.error
    assert result.answer == "42"


def test_connected_tools_lists_every_tool(project: Path) -> None:
    import asyncio

    workflow = load_workflow(write(project, STEPS), runs_dir=project / "runs")

    async def names() -> list[str]:
        async with workflow.connected_tools() as tools:
            return tools.names

    assert asyncio.run(names()) == ["add", "echo", "environment", "working_directory"]


def test_validation_checks_the_shape_without_starting_anything(tmp_path: Path) -> None:
    text = """
    tools:
      both:
        mcp: {command: [never-started], url: "http://127.0.0.1:9/mcp"}
      neither:
        mcp: {}
      typo:
        mcp: {comand: [x]}
      stray:
        mcp: {url: "http://127.0.0.1:9/mcp", env: {A: b}}
      listed:
        mcp: {command: [never-started]}
        include: [read_file]
        exlude: [x]
    agents:
      reader:
        instructions: Read.
        tools: [read_file, listed]
    workflow:
      kind: steps
      steps:
        - {id: one, tool: read_file, args: {path: a.txt}}
    """
    path = write(tmp_path, text)
    with pytest.raises(WorkflowValidationError) as info:
        validate_workflow(path)
    message = str(info.value)
    assert f"{path}:3:" in message and "exactly one of 'command'" in message
    assert f"{path}:5:" in message
    assert "unknown key 'comand'" in message and "did you mean 'command'?" in message
    assert "'env' and 'cwd' apply to a 'command' server only" in message
    assert "unknown key 'exlude'" in message and "did you mean 'exclude'?" in message
    assert "read_file" not in message  # provided by 'listed' (its include list)


def test_names_an_open_server_may_provide_are_not_reported(tmp_path: Path) -> None:
    text = """
    tools:
      fs: {mcp: {command: [never-started]}}
    agents:
      reader: {instructions: Read., tools: [read_text_file]}
    workflow:
      kind: steps
      steps:
        - {id: one, agent: reader, input: Read a.txt.}
        - {id: two, tool: list_directory, args: {path: .}}
    """
    validate_workflow(write(tmp_path, text))


def test_a_planner_plans_over_the_servers_tools(project: Path) -> None:
    text = f"""
    backends:
      brain: {{kind: local}}
    tools:
      calc:
        mcp: {{command: [{PYTHON}, my_server.py]}}
        include: [add]
    workflow:
      kind: planner
      question: What is 2 plus 40?
      backend: brain
      tools: [calc]
    """

    def offers_add(request: ChatRequest) -> bool:
        return "add" in json.dumps(request.model_dump(mode="json"))

    plan = json.dumps({"tasks": [{"tool": "add", "args": {"a": 2, "b": 40}}]})
    join = json.dumps({"answer": "2 plus 40 is 42.", "action": "finish"})
    brain = ScriptedBackend([Step(plan, expect=offers_add), Step(join, expect="42")], name="brain")
    workflow = load_workflow(
        write(project, text), backends={"brain": brain}, runs_dir=project / "runs"
    )
    result = workflow.run()  # blocking: the servers live on the run's own event loop
    assert result.ok, result.error
    assert result.answer == "2 plus 40 is 42."
    assert result.results == {"1.1": "42"}


def test_the_repl_says_it_does_not_start_mcp_servers(project: Path) -> None:
    from plait.cli.repl import load_session

    with pytest.raises(ConfigError, match="plait repl does not start MCP servers yet.*calc"):
        load_session(write(project, STEPS))
