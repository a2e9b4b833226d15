"""The workflow commands: run, validate, graph, schema, runs; exit codes 0/1/2/130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plait.cli import main

ROOT = Path(__file__).resolve().parents[1]
HELPERS = "tests.workflow_files.helpers"

STEPS = f"""
tools:
  shout: {{function: "{HELPERS}:shout"}}
inputs:
  text: {{default: hello}}
workflow:
  kind: steps
  steps:
    - id: a
      tool: shout
      args: {{text: "${{inputs.text}}"}}
    - id: b
      tool: shout
      args: {{text: "${{a}} again"}}
"""


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def python_path() -> str:
    """The PYTHONPATH for a ``plait`` subprocess: this one's (the sources under test) + the root."""
    return os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_run_prints_the_answer_and_progress_then_runs_list_and_show(tmp_path, state, capsys):
    path = write(tmp_path, STEPS)
    assert main(["run", str(path), "--input", "text=bees"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "BEES AGAIN\n"
    assert "> a shout started" in captured.err and "done in" in captured.err
    assert main(["runs", "list"]) == 0
    listing = capsys.readouterr().out
    run_id = listing.split()[0]
    assert "done" in listing and "BEES AGAIN" in listing
    assert main(["runs", "show", run_id]) == 0
    shown = capsys.readouterr().out
    assert f"run {run_id}: done" in shown and "step b: done" in shown
    assert "rests on: tool:shout" in shown  # a function tool's result is untrusted
    assert json.loads((state / "runs" / run_id / "run.json").read_text())["answer"] == "BEES AGAIN"
    assert (state / "runs" / run_id / "results.sqlite").is_file()


def test_every_run_is_traced_and_runs_show_html_writes_its_report(tmp_path, state, capsys):
    assert main(["run", str(write(tmp_path, STEPS)), "-q"]) == 0
    capsys.readouterr()
    (run_dir,) = (state / "runs").iterdir()
    spans = [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines()]
    assert {"plait.run", "plait.task"} <= {s["name"] for s in spans}
    assert main(["runs", "show", run_dir.name, "--html"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run_dir / 'report.html'}"
    html = (run_dir / "report.html").read_text()
    assert "<svg" in html and "shout" in html
    out = tmp_path / "elsewhere" / "r.html"
    assert main(["runs", "show", run_dir.name, "--html", str(out)]) == 0
    assert out.is_file()
    assert main(["runs", "show", "no-such-run", "--html"]) == 2


def test_run_json_result(tmp_path, state, capsys):
    assert main(["run", str(write(tmp_path, STEPS)), "--json", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["answer"] == "HELLO AGAIN" and result["results"]["a"] == "HELLO"


def test_failed_step_exits_1(tmp_path, state, capsys):
    path = write(
        tmp_path,
        """
        tools: {calc: {builtin: calculator}}
        workflow: {kind: steps, steps: [{id: a, tool: calculator, args: {expression: "1/0"}}]}
        """,
    )
    assert main(["run", str(path)]) == 1
    assert "plait: failed: run" in capsys.readouterr().err


def test_invalid_file_and_bad_input_exit_2(tmp_path, state, capsys):
    bad = write(tmp_path, "workflow: {kind: stepz}\n", "bad.yaml")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:1:18: workflow.kind" in err and "Traceback" not in err
    assert main(["run", str(bad)]) == 2
    assert main(["run", str(write(tmp_path, STEPS)), "--input", "nope=1"]) == 2
    assert "unknown input 'nope'" in capsys.readouterr().err
    assert main(["runs", "show", "no-such-run"]) == 2
    assert main(["run"]) == 2


def test_validate_graph_and_schema(tmp_path, capsys):
    path = write(tmp_path, STEPS)
    assert main(["validate", str(path)]) == 0
    assert "ok (steps workflow" in capsys.readouterr().out
    assert main(["graph", str(path)]) == 0
    mermaid = capsys.readouterr().out
    assert mermaid.startswith("flowchart TD") and "a --> b" in mermaid
    out = tmp_path / "g.mmd"
    assert main(["graph", str(path), "-o", str(out)]) == 0 and "a --> b" in out.read_text()
    if not any((Path(p) / "mmdc").exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        assert main(["graph", str(path), "-o", str(tmp_path / "g.svg")]) == 2
        assert "mermaid-cli" in capsys.readouterr().err
    assert main(["graph", str(ROOT / "examples" / "drone_qa.yaml")]) == 0
    assert "planner -. plans .-> tool_read_file" in capsys.readouterr().out
    assert main(["schema"]) == 0
    assert "PlannerWorkflow" in json.loads(capsys.readouterr().out)["$defs"]


def test_ctrl_c_keeps_the_run_and_resume_finishes_it(tmp_path, state):
    path = write(
        tmp_path,
        f"""
        tools:
          shout: {{function: "{HELPERS}:shout"}}
          slow: {{function: "{HELPERS}:slow_count"}}
        workflow:
          kind: steps
          steps:
            - {{id: fast, tool: shout, args: {{text: done}}}}
            - {{id: slow, tool: slow, args: {{n: 3}}, depends_on: [fast]}}
        """,
    )
    env = {**os.environ, "PLAIT_STATE_DIR": str(state), "PYTHONPATH": python_path()}
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "plait", "run", str(path)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert process.stderr is not None
    for line in process.stderr:  # wait until the slow step runs
        if "slow slow started" in line:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "plait run --resume" in err
    (record_path,) = (state / "runs").glob("*/run.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "interrupted"
    run_id = record["run_id"]
    # Resume with a fast stand-in for the slow tool: the finished step is restored.
    fast = path.read_text().replace("slow_count", "shout").replace("{n: 3}", "{text: x}")
    path.write_text(fast)
    done = subprocess.run(
        [sys.executable, "-P", "-m", "plait", "run", "--resume", run_id],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "= fast shout restored" in done.stderr and done.stdout.strip() == "X"
    assert json.loads(record_path.read_text())["status"] == "done"


def test_a_misconfigured_step_exits_2_and_a_failing_step_exits_1(tmp_path, state, capsys):
    path = write(
        tmp_path,
        """
        tools:
          calc: {builtin: calculator}
        inputs:
          expression: {default: "1 +"}
        workflow:
          kind: steps
          steps:
            - id: math
              tool: calculator
              args: {expression: "${inputs.expression}"}
        """,
    )
    assert main(["run", str(path), "-q"]) == 1  # a ToolError: the run failed
    err = capsys.readouterr().err
    assert "plait: failed: run" in err and "math: failed (ToolError: cannot parse" in err
    broken = write(
        tmp_path,
        f"""
        tools:
          setup: {{function: "{HELPERS}:misconfigured"}}
        workflow:
          kind: steps
          steps:
            - id: setup
              tool: setup
              args: {{text: x}}
        """,
        "broken.yaml",
    )
    assert main(["run", str(broken), "-q"]) == 2  # a ConfigError from inside the step
    err = capsys.readouterr().err
    assert "plait: error: tool 'misconfigured': API key setting PLAIT_TEST_KEY" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
