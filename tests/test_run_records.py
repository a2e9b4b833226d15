"""Run records under stress: secrets hidden, one process per run, attempts kept, damaged
records and stores reported, readable JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plait.backends.testing import ScriptedBackend
from plait.cli import main
from plait.errors import ConfigError
from plait.graphs import load_workflow

ROOT = Path(__file__).resolve().parents[1]
HELPERS = "tests.workflow_files.helpers"
SECRET = "sk-live-0123456789abcdef"


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def env(state: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    return {**os.environ, "PLAIT_STATE_DIR": str(state), "PYTHONPATH": path}


def plait(*args: str, state: Path, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-P", "-m", "plait", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(state),
        cwd=ROOT,
        **options,
    )


LEAKY = f"""
backends:
  remote:
    kind: openai
    model: m
    base_url: "http://127.0.0.1:9/v1/${{TOKEN}}"
    api_key_env: null
    max_attempts: 1
    timeout_s: 5
agents:
  writer: {{instructions: Say hi., backend: remote}}
tools:
  echo: {{function: "{HELPERS}:echo"}}
inputs:
  key: {{default: "${{TOKEN}}"}}
  one: {{default: "${{ONE}}"}}
workflow:
  kind: steps
  output: "${{said}}"
  steps:
    - {{id: said, tool: echo, args: {{text: "key ${{inputs.key}}, one ${{inputs.one}}, 1 + 1"}}}}
    - {{id: ask, agent: writer, input: hi, depends_on: [said]}}
"""


def test_environment_secrets_are_hidden_everywhere_a_run_writes_or_prints(
    tmp_path, state, monkeypatch, capsys
):
    monkeypatch.setenv("TOKEN", SECRET)
    monkeypatch.setenv("ONE", "1")  # too short to be a secret: 1s stay 1s
    path = write(tmp_path, LEAKY)
    assert main(["run", str(path)]) == 1  # the backend cannot be reached
    out, err = capsys.readouterr()
    assert "could not reach http://127.0.0.1:9/v1/***" in err  # the error names it, hidden
    assert "key ***, one 1, 1 + 1" in out or "key ***, one 1, 1 + 1" in err
    (folder,) = (state / "runs").iterdir()
    shown = [out, err]
    assert main(["runs", "show", folder.name]) == 0
    shown.append(capsys.readouterr().out)
    assert main(["runs", "show", folder.name, "--json"]) == 0
    shown.append(capsys.readouterr().out)
    assert main(["runs", "list", "--json"]) == 0
    shown.append(capsys.readouterr().out)
    assert main(["runs", "show", folder.name, "--html", str(tmp_path / "r.html")]) == 0
    capsys.readouterr()
    files = [folder / "run.json", folder / "trace.jsonl", tmp_path / "r.html"]
    for text in [*shown, *(f.read_text() for f in files)]:
        assert SECRET not in text
    record = json.loads((folder / "run.json").read_text())
    assert record["inputs"] == {"key": "***", "one": "1"}  # the input default is not in clear
    assert record["redacted_inputs"] == ["key"]
    assert "127.0.0.1:9/v1/***" in record["error"]
    assert "***" in (folder / "trace.jsonl").read_text()
    # A resume takes the hidden input from the environment again, not as "***":
    # the plan is the same, so the finished step is restored (not a changed-plan error).
    assert main(["run", "--resume", folder.name]) == 1
    err = capsys.readouterr().err
    assert "= said echo restored" in err and SECRET not in err


def test_an_error_raised_while_building_hides_the_secret(tmp_path, state, monkeypatch, capsys):
    monkeypatch.setenv("TOKEN", SECRET)
    path = write(
        tmp_path,
        """
        tools:
          docs: {builtin: files, root: "/nonexistent/${TOKEN}"}
        workflow:
          kind: steps
          steps: [{id: a, tool: list_files}]
        """,
    )
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent/***" in err and SECRET not in err


def test_a_second_process_cannot_run_a_run_that_is_running(tmp_path, state):
    path = write(
        tmp_path,
        f"""
        tools:
          block: {{function: "{HELPERS}:block_forever"}}
          shout: {{function: "{HELPERS}:shout"}}
        workflow:
          kind: steps
          steps:
            - {{id: first, tool: shout, args: {{text: once}}}}
            - {{id: stuck, tool: block, args: {{n: 1}}, depends_on: [first]}}
        """,
    )
    first = plait("run", str(path), state=state)
    assert first.stderr is not None
    for line in first.stderr:
        if "stuck block started" in line:
            break
    (folder,) = (state / "runs").iterdir()
    try:
        second = plait("run", "--resume", folder.name, state=state)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert f"run {folder.name} is already running (process {first.pid})" in err
        assert "Traceback" not in err
    finally:
        first.kill()  # a crash: the OS lets go of the lock
        first.communicate()
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "running"  # killed: it could not record anything
    # Now nobody holds it: `runs list` says so, and a resume takes the run over.
    listed = subprocess.run(
        [sys.executable, "-P", "-m", "plait", "runs", "list"],
        capture_output=True,
        text=True,
        env=env(state),
        cwd=ROOT,
        timeout=120,
    )
    assert "not held by any process" in listed.stdout
    path.write_text(
        path.read_text().replace("block_forever", "shout").replace("{n: 1}", "{text: x}")
    )
    again = plait("run", "--resume", folder.name, state=state)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "= first shout restored" in err and out.strip() == "X"
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "done"
    assert [a["status"] for a in record["attempts"]] == ["interrupted", "done"]
    assert "ended without recording" in record["attempts"][0]["error"]


async def test_a_resume_keeps_each_attempts_usage_cost_and_start(tmp_path):
    from plait import ChatRequest, Completion
    from plait.backends.testing import FunctionBackend
    from plait.completions import Usage
    from plait.errors import BackendUnavailable

    path = write(
        tmp_path,
        """
        backends:
          cloud:
            kind: openai
            model: big
            api_key_env: null
            price: {prompt_per_1k: 2.0, completion_per_1k: 8.0}
        agents:
          writer: {instructions: You write one line., backend: cloud}
        workflow:
          kind: steps
          steps:
            - {id: write, agent: writer, input: Write a line.}
            - {id: again, agent: writer, input: "Again: ${write}"}
        """,
    )
    usage = Usage(prompt_tokens=1000, completion_tokens=500)

    async def once(request: ChatRequest) -> Completion:
        if len(first.requests) > 1:
            raise BackendUnavailable("the server went away")
        return Completion(text="A line.", usage=usage)

    first = FunctionBackend(once, name="cloud")
    wf = load_workflow(path, backends={"cloud": first}, runs_dir=tmp_path / "runs")
    one = await wf.arun(run_id="r")
    assert not one.ok and "the server went away" in (one.error or "")
    second = ScriptedBackend([Completion(text="Twice.", usage=usage)], name="cloud")
    wf = load_workflow(path, backends={"cloud": second}, runs_dir=tmp_path / "runs")
    two = await wf.arun(run_id="r")
    assert two.ok and two.cost == 6.0  # this attempt's own cost
    record = json.loads((tmp_path / "runs" / "r" / "run.json").read_text())
    attempts = record["attempts"]
    assert [a["status"] for a in attempts] == ["failed", "done"]
    assert [a["cost"] for a in attempts] == [6.0, 6.0]
    assert [a["usage"]["prompt_tokens"] for a in attempts] == [1000, 1000]
    assert record["cost"] == 12.0 and record["usage"]["completion_tokens"] == 1000
    assert record["started_at"] == attempts[0]["started_at"] < attempts[1]["started_at"]


def test_runs_show_lists_the_attempts(tmp_path, state, capsys):
    path = write(
        tmp_path,
        f"""
        tools:
          shout: {{function: "{HELPERS}:shout"}}
        workflow:
          kind: steps
          steps: [{{id: a, tool: shout, args: {{text: hi}}}}]
        """,
    )
    assert main(["run", str(path), "-q"]) == 0
    (folder,) = (state / "runs").iterdir()
    assert main(["run", "--resume", folder.name, "-q"]) == 0
    capsys.readouterr()
    assert main(["runs", "show", folder.name]) == 0
    out = capsys.readouterr().out
    assert "attempt 1: done" in out and "attempt 2: done" in out


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe not text", "not UTF-8"),
        (b"{ not json", "not valid JSON"),
        (b"[1, 2]", "not a run record"),
    ],
)
def test_a_damaged_run_record_is_reported_not_a_traceback(tmp_path, state, capsys, content, reason):
    path = write(
        tmp_path,
        f"""
        tools:
          shout: {{function: "{HELPERS}:shout"}}
        workflow:
          kind: steps
          steps: [{{id: a, tool: shout, args: {{text: hi}}}}]
        """,
    )
    assert main(["run", str(path), "-q"]) == 0
    assert main(["run", str(path), "-q"]) == 0
    capsys.readouterr()
    broken, fine = sorted((state / "runs").iterdir())
    (broken / "run.json").write_bytes(content)
    for command in (["runs", "show", broken.name], ["run", "--resume", broken.name]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"the record of run {broken.name!r} cannot be read: {reason}" in err
    assert main(["runs", "list"]) == 0
    out, err = capsys.readouterr()
    assert fine.name in out and broken.name not in out
    assert "warning: " in err and broken.name in err and reason in err


async def test_a_damaged_checkpoint_or_store_fails_the_run_with_the_reason(tmp_path):
    path = write(
        tmp_path,
        """
        backends:
          small: {kind: local}
        tools:
          calc: {builtin: calculator}
        workflow: {kind: planner, question: "What is 2 + 2?", backend: small, tools: [calculator]}
        """,
    )
    wf = load_workflow(path, backends={"small": ScriptedBackend([])}, runs_dir=tmp_path / "runs")
    folder = tmp_path / "runs" / "damaged"
    folder.mkdir(parents=True)
    (folder / "checkpoints.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="checkpoints.sqlite cannot be used"):
        await wf.arun(run_id="damaged")
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "failed" and "checkpoints.sqlite cannot be used" in record["error"]


def test_json_on_stdout_is_readable_utf8(tmp_path, state, capsys):
    path = write(
        tmp_path,
        f"""
        tools:
          where: {{function: "{HELPERS}:place"}}
        inputs:
          city: {{default: São Paulo}}
        workflow:
          kind: steps
          steps: [{{id: said, tool: where, args: {{city: "${{inputs.city}}"}}}}]
        """,
    )
    assert main(["run", str(path), "-q"]) == 0
    assert '"city": "São Paulo"' in capsys.readouterr().out
    assert main(["run", str(path), "-q", "--json"]) == 0
    assert '"São Paulo"' in capsys.readouterr().out
    for command in (["runs", "list", "--json"], ["runs", "show", "--json"]):
        if command[1] == "show":
            command.insert(2, sorted((state / "runs").iterdir())[0].name)
        assert main(command) == 0
        out = capsys.readouterr().out
        assert "São Paulo" in out and "\\u00e3" not in out
    (record,) = {
        p.read_text(encoding="utf-8") for p in list((state / "runs").glob("*/run.json"))[:1]
    }
    assert "São Paulo" in record


async def test_a_second_run_of_the_same_id_in_one_process_refuses(tmp_path):
    import asyncio

    from tests.workflow_files import helpers

    path = write(
        tmp_path,
        f"""
        tools:
          block: {{function: "{HELPERS}:block_forever"}}
        workflow:
          kind: steps
          steps: [{{id: a, tool: block, args: {{n: 5}}}}]
        """,
    )
    wf = load_workflow(path, runs_dir=tmp_path / "runs")
    started = asyncio.Event()
    helpers.STUCK.clear()
    first = asyncio.ensure_future(
        wf.arun(
            run_id="once", on_event=lambda e: getattr(e, "kind", "") == "started" and started.set()
        )
    )
    try:
        await asyncio.wait_for(started.wait(), 60)
        with pytest.raises(
            ConfigError, match=f"run once is already running \\(process {os.getpid()}\\)"
        ):
            await wf.arun(run_id="once")
    finally:
        helpers.STUCK.set()
    assert (await first).answer == 5
    helpers.STUCK.clear()
    assert (await wf.arun(run_id="once")).answer == 5  # released: it runs (restored) again
