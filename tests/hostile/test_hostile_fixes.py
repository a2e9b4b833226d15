"""The fixes behind the hostile corpus, one by one: tool modules next to the workflow,
function-name aliases, the reader's limits, the CLI's last-resort message, the REPL's
``/load`` and its input cap.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from plait.backends.testing import ScriptedBackend
from plait.cli import main
from plait.cli.repl import ReplSession, Shell, default_session
from plait.cli.repl._app import LineCap, prompt_session
from plait.errors import ConfigError, WorkflowValidationError
from plait.graphs import load_workflow, validate_workflow
from plait.graphs.workflows._source import MAX_VALUES, read_source


def write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip())
    return path


HOTEL = """
tools:
  price: {function: "mytools:hotel_price"}
agents:
  planner: {instructions: "Plan.", tools: [hotel_price]}
workflow:
  kind: steps
  steps:
    - {id: quote, tool: hotel_price, args: {city: Lisbon}}
"""

MYTOOLS = """
from helpers import RATE


def hotel_price(city: str) -> str:
    \"\"\"The price of a night in a city.

    Args:
        city: where.
    \"\"\"
    return f"{city}: {RATE} EUR"
"""


def test_a_tool_module_next_to_the_workflow_needs_no_pythonpath(tmp_path: Path):
    """The new user's first workflow: ``mytools.py`` beside it, run from elsewhere."""
    folder = tmp_path / "trip"
    path = write(folder, "trip.yaml", HOTEL)
    write(folder, "mytools.py", MYTOOLS)
    write(folder, "helpers.py", "RATE = 87\n")  # a sibling the module imports itself
    env = {**os.environ, "PLAIT_STATE_DIR": str(tmp_path / "state")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "plait", "run", str(path), "-q"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Lisbon: 87 EUR"


def test_two_workflows_get_their_own_tools_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))
    path_before = list(sys.path)
    answers = []
    for name in ("a", "b"):
        folder = tmp_path / name
        write(folder, "tools.py", f"def which() -> str:\n    return 'from {name}'\n")
        path = write(
            folder,
            "wf.yaml",
            """
            tools: {which: {function: "tools:which"}}
            workflow: {kind: steps, steps: [{id: s, tool: which}]}
            """,
        )
        answers.append(load_workflow(path, runs_dir=tmp_path / "runs").run().answer)
    assert answers == ["from a", "from b"]
    assert sys.path == path_before  # the folders were on it only while importing
    top = sys.modules.get("tools")
    assert top is None or str(tmp_path) not in str(getattr(top, "__file__", ""))


def test_a_function_tool_is_offered_under_its_function_name_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))
    path = write(tmp_path, "trip.yaml", HOTEL)
    write(tmp_path, "mytools.py", MYTOOLS.replace("from helpers import RATE", "RATE = 90"))
    spec = validate_workflow(path)  # the agent and the step name hotel_price
    assert spec.agents["planner"].tools == ["hotel_price"]
    workflow = load_workflow(path, runs_dir=tmp_path / "runs")
    assert [t.name for t in workflow.agents["planner"].tools] == ["hotel_price"]
    assert workflow.tools.names == ["price"]  # offered once where all tools are listed
    assert workflow.run().answer == "Lisbon: 90 EUR"
    # An unknown name is still reported, with the names that exist.
    path.write_text(HOTEL.replace("tool: hotel_price", "tool: hotel_prices"))
    with pytest.raises(WorkflowValidationError, match="did you mean 'hotel_price'"):
        validate_workflow(path)


def test_a_module_error_at_import_names_the_entry(tmp_path: Path):
    path = write(
        tmp_path,
        "wf.yaml",
        """
        tools:
          t: {function: "broken:f"}
        workflow: {kind: steps, steps: [{id: s, tool: t}]}
        """,
    )
    write(tmp_path, "broken.py", "import json\njson.loads('{')\n")
    validate_workflow(path)  # validate does not run tool code: it compiles
    with pytest.raises(ConfigError) as raised:
        load_workflow(path)
    assert str(raised.value).startswith(f"{path}:2:6: tool 't': importing module 'broken' raised")
    (tmp_path / "broken.py").write_text("def f(:\n")
    with pytest.raises(
        WorkflowValidationError, match=r"broken\.py:1:7: the module does not compile"
    ):
        validate_workflow(path)


def test_typed_defaults_and_urls_that_are_right_pass(tmp_path: Path):
    path = write(
        tmp_path,
        "wf.yaml",
        """
        backends: {r: {kind: openai, model: m, base_url: "https://example.org/v1"}}
        inputs:
          n: {type: integer, default: 3}
          x: {type: number, default: 3}
          b: {type: boolean, default: false}
          s: {type: string, default: "3"}
          t: {type: integer, default: "${PLAIT_HOSTILE_SEVEN}"}
        tools: {c: {builtin: calculator}}
        workflow: {kind: steps, steps: [{id: s, tool: calculator}]}
        """,
    )
    spec = validate_workflow(path, env={"PLAIT_HOSTILE_SEVEN": "7"})
    assert spec.inputs["x"].default == 3 and spec.inputs["b"].default is False
    assert spec.inputs["t"].default == 7  # text converts, as --input does


def test_merge_keys_and_a_byte_order_mark_read_as_plain_data(tmp_path: Path):
    path = tmp_path / "wf.yaml"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + textwrap.dedent(
            """
            base: &base {instructions: "Be brief.", max_steps: 2}
            agents:
              a: {<<: *base, max_steps: 3}
            """
        ).encode()
    )
    source = read_source(path)
    assert source.data["agents"]["a"] == {"instructions": "Be brief.", "max_steps": 3}
    assert str(source.where(("agents", "a", "max_steps"), key=True)).endswith(":4:18")


def test_aliases_are_counted_each_time_they_expand(tmp_path: Path):
    # 12 ** 5 ~ 250,000 values from a file of a few hundred bytes.
    lines = ["a0: &a0 [" + ", ".join(["x"] * 12) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 12) + "]" for i in range(1, 5)]
    path = tmp_path / "wf.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 400
    problems = [str(p) for p in read_source(path).problems]
    assert len(problems) == 1 and f"more than {MAX_VALUES:,} values" in problems[0]


def test_the_cli_turns_a_bug_into_one_short_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import plait.cli._main as cli_main

    def broken(_args: object) -> int:
        raise ValueError("an internal inconsistency")

    monkeypatch.setattr(cli_main, "schema_command", broken)
    monkeypatch.delenv("PLAIT_DEBUG", raising=False)
    assert main(["schema"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("plait: internal error: ValueError: an internal inconsistency")
    assert "report" in err and "Traceback" not in err and len(err.splitlines()) == 1
    monkeypatch.setenv("PLAIT_DEBUG", "1")
    with pytest.raises(ValueError):
        main(["schema"])

    def leaves(_args: object) -> int:
        raise SystemExit(5)

    monkeypatch.setattr(cli_main, "schema_command", leaves)
    with pytest.raises(SystemExit):
        main(["schema"])


async def test_repl_load_reports_hostile_files_and_survives_a_bug(tmp_path: Path):
    backend = ScriptedBackend([])
    session = default_session(backend)
    out = io.StringIO()
    shell = Shell(session, out)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [*a]\n")
    assert await shell.handle(f"/load {bomb}")
    line = out.getvalue()
    assert line.startswith("error: ") and f"{bomb}:1:4" in line and "Traceback" not in line
    assert shell.session is session

    def buggy(_path: Path) -> ReplSession:
        raise KeyError("inner")

    shell = Shell(session, out, loader=buggy)
    start = out.tell()
    assert await shell.handle("/load x.yaml")
    said = out.getvalue()[start:]
    assert said.startswith("error: cannot load x.yaml: internal error KeyError")
    assert shell.session is session


def test_line_cap_fits_and_counts():
    cap = LineCap(limit=10)
    assert cap.fit(0, "hello") == "hello" and cap.dropped == 0
    assert cap.fit(8, "hello") == "he" and cap.dropped == 3
    assert cap.full(10) and not cap.full(9)
    assert "10 characters" in cap.notice() and "nothing was sent" in cap.notice()


async def test_a_huge_paste_is_cut_at_the_cap():
    """A 100 KB bracketed paste through the real prompt (a pipe, not a terminal)."""
    shell = Shell(default_session(ScriptedBackend([])), io.StringIO())
    cap = LineCap(limit=2_000)
    with create_pipe_input() as pipe:
        prompt = prompt_session(shell, cap, input=pipe, output=DummyOutput())
        data = "\x1b[200~" + "y" * 100_000 + "\x1b[201~" + "zz\r"
        # More than a pipe holds: written from a thread while the prompt reads.
        writer = threading.Thread(target=pipe.send_text, args=(data,), daemon=True)
        writer.start()
        line = await asyncio.wait_for(prompt.prompt_async("> "), timeout=120)
        writer.join(timeout=10)
    assert line == "y" * 2_000
    assert cap.dropped == 98_000 + 2  # the typed "zz" found the buffer full too
