"""``plait serve``: every route against a real uvicorn server on a loopback port.

The server runs as a subprocess (``python -m plait serve ...``, or a launcher that
passes scripted backends) in the test's folder, so runs land in its own
``.plait/runs``. Tools append each call to ``calls.log``, which shows what ran
and how often (a resumed run must not call a finished step again).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

TOOLS = '''
import os
import time


def pause(text: str, seconds: float = 0.05) -> str:
    """Sleep a little, log the call, and shout the text.

    Args:
        text: the text.
        seconds: how long to sleep.
    """
    time.sleep(seconds)
    with open("calls.log", "a") as log:
        log.write(text + "\\n")
    return text.upper()
'''

WORKFLOW = """
tools:
  pause: {function: "serve_tools:pause"}
inputs:
  topic: {type: string, default: bees}
  n: {type: integer, default: 2}
workflow:
  kind: steps
  steps:
    - id: fetch
      tool: pause
      args: {text: "${inputs.topic}"}
    - id: publish
      tool: pause
      args: {text: "publish ${fetch}"}
      requires_approval: true
    - id: notify
      tool: pause
      args: {text: "notify ${publish}"}
  output: "${notify}"
"""

AGENT_WORKFLOW = """
backends:
  fake: {kind: local}
agents:
  writer: {instructions: You write one sentence., backend: fake}
inputs:
  topic: {type: string, default: bees}
workflow:
  kind: steps
  steps:
    - id: write
      agent: writer
      input: "Write about ${inputs.topic}."
"""

LAUNCHER = """
import sys
from plait.backends.testing import ScriptedBackend
from plait.cli.serve import serve

serve(["agent.yaml"], port=int(sys.argv[1]),
      backends={"fake": ScriptedBackend(["Bees hum all day long."], name="fake")})
"""


PLANNER_TOOLS = '''
def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: the key.
    """
    with open("calls.log", "a") as log:
        log.write(f"lookup {key}\\n")
    return f"value of {key}"


def send(to: str, body: str) -> str:
    """Send a message.

    Args:
        to: who to.
        body: what.
    """
    with open("calls.log", "a") as log:
        log.write(f"send {to} {body}\\n")
    return f"sent to {to}"
'''

PLANNER_WORKFLOW = """
backends:
  planner: {kind: local}
tools:
  lookup: {function: "plan_tools:lookup"}
  send: {function: "plan_tools:send"}
inputs:
  question: {type: string, default: Send the value to bob.}
workflow:
  kind: planner
  question: "${inputs.question}"
  backend: planner
  tools: [lookup, send]
  requires_approval: [send]
  max_replans: 0
"""

# The planner's scripted replies come from a JSON file: each server gets its own.
PLANNER_LAUNCHER = """
import json
import sys
from plait.backends.testing import ScriptedBackend, Step
from plait.cli.serve import serve

script = [Step(s["reply"], expect=s.get("expect")) for s in json.load(open(sys.argv[2]))]
serve(["planner.yaml"], port=int(sys.argv[1]),
      backends={"planner": ScriptedBackend(script, name="planner")})
"""


def _plan(key: str) -> dict[str, Any]:
    tasks = [
        {"tool": "lookup", "args": {"key": key}},
        {"tool": "send", "args": {"to": "bob", "body": "$1"}},
    ]
    return {"reply": json.dumps({"tasks": tasks})}


def _finish(answer: str, expect: str | None = None) -> dict[str, Any]:
    return {"reply": json.dumps({"action": "finish", "answer": answer}), "expect": expect}


def _planner_server(folder: Path, script: list[dict[str, Any]]) -> Server:
    (folder / "plan_tools.py").write_text(textwrap.dedent(PLANNER_TOOLS))
    (folder / "planner.yaml").write_text(textwrap.dedent(PLANNER_WORKFLOW).lstrip())
    (folder / "launch_planner.py").write_text(textwrap.dedent(PLANNER_LAUNCHER))
    (folder / "script.json").write_text(json.dumps(script))
    server = Server(folder)
    return server.start([sys.executable, "launch_planner.py", str(server.port), "script.json"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A ``plait serve`` subprocess in ``folder`` and an HTTP client for it."""

    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = env or {}
        self.process: subprocess.Popen[str] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self, command: list[str] | None = None) -> Server:
        env = dict(os.environ, **self.env)
        env["PYTHONPATH"] = os.pathsep.join([str(self.folder), env.get("PYTHONPATH", "")])
        env.pop("PLAIT_STATE_DIR", None)
        argv = command or [
            sys.executable,
            "-m",
            "plait",
            "serve",
            *self.args,
            "--port",
            str(self.port),
        ]
        self.process = subprocess.Popen(
            argv, cwd=self.folder, env=env, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"plait serve exited: {self.process.stderr.read()}")  # type: ignore[union-attr]
            try:
                httpx.get(self.url + "/openapi.json", timeout=2, headers=self._auth())
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("plait serve did not start listening")

    def _auth(self) -> dict[str, str]:
        token = self.env.get("PLAIT_SERVE_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill(signal.SIGTERM)
        self.client.close()

    def events(self, run_id: str) -> Iterator[dict[str, Any]]:
        """The run's server-sent events, parsed, until the server ends the stream."""
        with self.client.stream("GET", f"/runs/{run_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            data: list[str] = []
            kind = None
            for line in response.iter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif not line and data:
                    event = json.loads("\n".join(data))
                    assert event["type"] == kind
                    yield event
                    data, kind = [], None

    def follow(self, run_id: str, decide: dict[str, dict[str, Any]] | None = None) -> list[Any]:
        """Every event of a run to its end, answering approvals from ``decide``."""
        seen = []
        for event in self.events(run_id):
            seen.append(event)
            if event["type"] == "approval" and event["state"] == "pending":
                awaiting = self.client.get(f"/runs/{run_id}").json()["pending_approvals"]
                if event["task_id"] not in [a["task_id"] for a in awaiting]:
                    continue  # asked in an earlier attempt of the run (before a resume)
                decision = (decide or {}).get(event["task_id"], {"action": "approve"})
                answer = self.client.post(
                    f"/runs/{run_id}/approvals/{event['task_id']}", json=decision
                )
                assert answer.status_code == 200, answer.text
        return seen

    def wait_for(self, run_id: str, kind: str, state: str) -> None:
        """Read the stream until an event of ``kind`` with ``state`` (then let go)."""
        for event in self.events(run_id):
            if event["type"] == kind and state in (event.get("state"), event.get("status")):
                return
        raise AssertionError(f"the stream of {run_id} ended before {kind} {state}")


def _tasks(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["task_id"], e["kind"]) for e in events if e["type"] == "task"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "serve_tools.py").write_text(textwrap.dedent(TOOLS))
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(WORKFLOW).lstrip())
    return tmp_path


@pytest.fixture
def server(folder: Path) -> Iterator[Server]:
    running = Server(folder, "wf.yaml").start()
    yield running
    running.stop()


def _calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_the_command_line_loads_the_http_stack_only_for_serve():
    probe = "import sys, plait.cli; print(sorted({'fastapi', 'uvicorn'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_run_streams_events_in_order_waits_for_approval_and_answers(server, folder):
    started = server.client.post("/runs", json={"workflow": "wf", "inputs": {"topic": "ants"}})
    assert started.status_code == 202, started.text
    run = started.json()
    run_id = run["run_id"]
    assert run["status"] == "queued" and run["inputs"] == {"topic": "ants", "n": 2}

    events = server.follow(run_id)
    assert [e["seq"] for e in events] == list(range(len(events)))
    kinds = [(e["type"], e.get("status") or e.get("state") or e.get("kind")) for e in events]
    assert kinds[:2] == [("run", "queued"), ("run", "running")]
    assert kinds[-2:] == [("answer", None), ("run", "done")]
    tasks = _tasks(events)
    # Each step starts only after the one it needs; the flagged one waits for the reviewer.
    assert tasks.index(("fetch", "finished")) < tasks.index(("publish", "started"))
    pending = next(i for i, e in enumerate(events) if e.get("state") == "pending")
    decided = next(i for i, e in enumerate(events) if e.get("state") == "decided")
    assert events[pending]["task_id"] == "publish"
    assert events[pending]["args"] == {"text": "publish ANTS"}
    started_at = next(
        i
        for i, e in enumerate(events)
        if e.get("task_id") == "publish" and e.get("kind") == "started"
    )
    assert pending < decided < started_at
    assert events[-2]["answer"] == "NOTIFY PUBLISH ANTS"

    # A late subscriber gets the whole log, and the stream ends with the run.
    assert server.follow(run_id) == events

    record = server.client.get(f"/runs/{run_id}").json()
    assert record["status"] == "done" and record["answer"] == "NOTIFY PUBLISH ANTS"
    assert record["live"] is False and record["pending_approvals"] == []
    assert record["steps"] == {"fetch": "done", "publish": "done", "notify": "done"}
    # Waiting in the queue was no attempt of its own.
    assert [a["status"] for a in record["attempts"]] == ["done"]
    listed = server.client.get("/runs").json()
    assert [r["run_id"] for r in listed] == [run_id]
    # The same durable run as `plait run`: its record is in the folder's .plait/runs.
    on_disk = json.loads((folder / ".plait" / "runs" / run_id / "run.json").read_text())
    assert on_disk["status"] == "done"

    report = server.client.get(f"/runs/{run_id}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "publish" in report.text and "NOTIFY PUBLISH ANTS" in report.text


def test_reject_with_reason_and_edit_arguments(server):
    rejected = server.client.post("/runs", json={"workflow": "wf"}).json()["run_id"]
    events = server.follow(rejected, {"publish": {"action": "reject", "reason": "not today"}})
    skipped = {e["task_id"]: e["error"] for e in events if e.get("kind") == "skipped"}
    assert "not today" in skipped["publish"] and "notify" in skipped
    assert server.client.get(f"/runs/{rejected}").json()["status"] == "failed"

    edited = server.client.post("/runs", json={"workflow": "wf"}).json()["run_id"]
    events = server.follow(edited, {"publish": {"action": "edit", "args": {"text": "draft"}}})
    assert events[-2] == {**events[-2], "type": "answer", "answer": "NOTIFY DRAFT"}


def test_errors_are_json_with_what_and_where(server):
    client = server.client

    def problem(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"] and body["detail"], body
        return body

    body = problem(client.get("/runs/no-such-run"), 404)
    assert "no run 'no-such-run'" in body["error"]
    for route in ["/runs/no-such-run/events", "/runs/no-such-run/report", "/runs/x/live"]:
        assert problem(client.get(route), 404)["detail"][0]["loc"] == ["path", "run_id"]
    problem(client.get("/runs/..%2f..%2fetc/report"), 404)
    body = problem(client.post("/runs", json={"workflow": "nope"}), 422)
    assert body["detail"][0]["loc"] == ["body", "workflow"] and "served: wf" in body["error"]
    body = problem(client.post("/runs", json={"workflow": "wf", "inputs": {"n": "many"}}), 422)
    assert body["detail"] == [
        {"loc": ["body", "inputs", "n"], "msg": "input 'n' must be an integer, got 'many'"}
    ]
    body = problem(
        client.post("/runs", json={"workflow": "wf", "inputs": {"n": "x", "colour": "red"}}), 422
    )
    assert sorted(tuple(d["loc"]) for d in body["detail"]) == [
        ("body", "inputs", "colour"),
        ("body", "inputs", "n"),
    ]
    body = problem(client.post("/runs", json={"workflow": "wf", "extra": 1}), 422)
    assert body["detail"][0]["loc"] == ["body", "extra"]
    body = problem(
        client.post("/runs", content=b"{not json", headers={"content-type": "application/json"}),
        422,
    )
    assert body["detail"][0]["loc"][0] == "body"
    body = problem(
        client.post("/runs", json={"workflow": "wf", "inputs": {"topic": "x" * 2_000_000}}), 413
    )
    assert "over the limit" in body["error"]

    def chunks() -> Iterator[bytes]:
        yield b'{"workflow": "wf", "inputs": {"topic": "'
        for _ in range(40):
            yield b"x" * 50_000
        yield b'"}}'

    problem(
        client.post("/runs", content=chunks(), headers={"content-type": "application/json"}), 413
    )
    assert client.get("/runs").json() == []  # nothing above started a run

    run_id = client.post("/runs", json={"workflow": "wf"}).json()["run_id"]
    server.wait_for(run_id, "approval", "pending")
    body = problem(client.post(f"/runs/{run_id}/approvals/fetch", json={"action": "approve"}), 404)
    assert "awaiting: publish" in body["error"]
    body = problem(client.post(f"/runs/{run_id}/approvals/publish", json={"action": "maybe"}), 422)
    assert body["detail"][0]["loc"] == ["body", "action"]
    body = problem(client.post(f"/runs/{run_id}/approvals/publish", json={"action": "edit"}), 422)
    assert "args" in body["error"]
    problem(client.post(f"/runs/{run_id}/resume"), 409)  # it is live
    assert client.post(f"/runs/{run_id}/approvals/publish", json={"action": "approve"}).is_success
    server.follow(run_id)
    body = problem(client.post(f"/runs/{run_id}/resume"), 409)
    assert "done" in body["error"]
    problem(client.post(f"/runs/{run_id}/cancel"), 409)
    problem(client.get("/no/such/route"), 404)

    spec = client.get("/openapi.json").json()
    for path in [
        "/runs",
        "/runs/{run_id}",
        "/runs/{run_id}/events",
        "/runs/{run_id}/approvals/{task}",
        "/runs/{run_id}/resume",
        "/runs/{run_id}/cancel",
        "/runs/{run_id}/report",
    ]:
        assert path in spec["paths"], path
    assert client.get("/docs").status_code == 200


def test_cancel_then_resume_restores_finished_steps(server, folder):
    run_id = server.client.post("/runs", json={"workflow": "wf"}).json()["run_id"]
    server.wait_for(run_id, "approval", "pending")
    assert server.client.post(f"/runs/{run_id}/cancel").json() == {
        "run_id": run_id,
        "cancelling": True,
    }
    events = list(server.events(run_id))
    assert events[-1]["type"] == "run" and events[-1]["status"] == "interrupted"
    record = server.client.get(f"/runs/{run_id}").json()
    assert record["status"] == "interrupted" and record["resumable"] is True

    assert server.client.post(f"/runs/{run_id}/resume").status_code == 202
    events = server.follow(run_id)
    resumed = events[next(i for i, e in enumerate(events) if e.get("resumed")) :]
    assert ("fetch", "restored") in _tasks(resumed) and ("fetch", "started") not in _tasks(resumed)
    assert resumed[-1]["status"] == "done"
    assert _calls(folder) == ["bees", "publish BEES", "notify PUBLISH BEES"]


def test_sigkill_restart_lists_the_run_and_resume_reruns_nothing_finished(folder):
    first = Server(folder, "wf.yaml").start()
    try:
        run_id = first.client.post("/runs", json={"workflow": "wf"}).json()["run_id"]
        first.wait_for(run_id, "approval", "pending")
        first.kill(signal.SIGKILL)
    finally:
        first.stop()
    assert _calls(folder) == ["bees"]

    again = Server(folder, "wf.yaml").start()
    try:
        listed = again.client.get("/runs").json()
        assert [r["run_id"] for r in listed] == [run_id]
        assert listed[0]["status"] == "running"  # as the killed server left it
        assert listed[0]["live"] is False and listed[0]["resumable"] is True
        # Its past events come back from the run's own log.
        past = list(again.events(run_id))
        assert past[-1]["type"] == "approval" and past[-1]["state"] == "pending"

        assert again.client.post(f"/runs/{run_id}/resume").status_code == 202
        events = again.follow(run_id)
        resumed = events[len(past) :]
        assert ("fetch", "restored") in _tasks(resumed)
        assert ("fetch", "started") not in _tasks(resumed)
        assert again.client.get(f"/runs/{run_id}").json()["answer"] == "NOTIFY PUBLISH BEES"
    finally:
        again.stop()
    assert _calls(folder) == ["bees", "publish BEES", "notify PUBLISH BEES"]


def test_runs_beyond_the_limit_wait_queued(folder):
    server = Server(folder, "wf.yaml", "--max-runs", "1").start()
    try:
        first = server.client.post("/runs", json={"workflow": "wf", "inputs": {"topic": "a"}})
        second = server.client.post("/runs", json={"workflow": "wf", "inputs": {"topic": "b"}})
        one, two = first.json()["run_id"], second.json()["run_id"]
        server.wait_for(one, "approval", "pending")
        # The first holds the only slot while it waits for its reviewer.
        assert server.client.get(f"/runs/{two}").json()["status"] == "queued"
        assert _calls(folder) == ["a"]
        server.follow(one)
        server.follow(two)
        assert server.client.get(f"/runs/{two}").json()["status"] == "done"
        assert _calls(folder) == [
            "a",
            "publish A",
            "notify PUBLISH A",
            "b",
            "publish B",
            "notify PUBLISH B",
        ]
    finally:
        server.stop()


def test_a_restarted_server_starts_the_runs_a_killed_one_had_queued(folder):
    first = Server(folder, "wf.yaml", "--max-runs", "1").start()
    try:
        held = first.client.post("/runs", json={"workflow": "wf", "inputs": {"topic": "a"}})
        queued = first.client.post("/runs", json={"workflow": "wf", "inputs": {"topic": "b"}})
        one, two = held.json()["run_id"], queued.json()["run_id"]
        first.wait_for(one, "approval", "pending")
        assert first.client.get(f"/runs/{two}").json()["status"] == "queued"
        first.kill(signal.SIGKILL)
    finally:
        first.stop()

    again = Server(folder, "wf.yaml", "--max-runs", "1").start()
    try:
        # The queued run is started again by the new server itself, with no request.
        events = again.follow(two)
        assert events[-1] == {**events[-1], "type": "run", "status": "done"}
        assert again.client.get(f"/runs/{two}").json()["answer"] == "NOTIFY PUBLISH B"
        # The one that was running waits for a resume (someone may want it stopped).
        assert again.client.get(f"/runs/{one}").json()["resumable"] is True
        assert _calls(folder) == ["a", "b", "publish B", "notify PUBLISH B"]
    finally:
        again.stop()


def test_token_is_required_when_set_and_beyond_loopback(folder):
    refused = subprocess.run(
        [sys.executable, "-m", "plait", "serve", "wf.yaml", "--host", "0.0.0.0", "--port", "1"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PLAIT_SERVE_TOKEN"},
    )
    assert refused.returncode == 2
    assert "needs a token: set PLAIT_SERVE_TOKEN" in refused.stderr
    assert "Traceback" not in refused.stderr

    server = Server(folder, "wf.yaml", env={"PLAIT_SERVE_TOKEN": "s3cret"}).start()
    try:
        bare = httpx.get(server.url + "/runs")
        assert bare.status_code == 401 and "PLAIT_SERVE_TOKEN" in bare.json()["error"]
        assert (
            httpx.get(server.url + "/", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        assert (
            httpx.get(server.url + "/runs", headers={"Authorization": "Bearer s3cret"}).json() == []
        )
        assert httpx.get(server.url + "/runs?token=s3cret").status_code == 200
    finally:
        server.stop()


def test_model_calls_stream_with_their_tokens(folder):
    (folder / "agent.yaml").write_text(textwrap.dedent(AGENT_WORKFLOW).lstrip())
    (folder / "launch.py").write_text(textwrap.dedent(LAUNCHER))
    server = Server(folder)
    server.start([sys.executable, "launch.py", str(server.port)])
    try:
        run_id = server.client.post("/runs", json={"workflow": "agent"}).json()["run_id"]
        events = server.follow(run_id)
        calls = [e for e in events if e["type"] == "model_call"]
        assert len(calls) == 1 and calls[0]["agent"] == "writer"
        assert calls[0]["backend"] == "fake" and calls[0]["completion_tokens"] == 5
        assert calls[0]["prompt_tokens"] > 0
        assert events[-2]["answer"] == "Bees hum all day long."
    finally:
        server.stop()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4).

    A pipe needs no websocket client and no browser download: Debian's chromium
    reads commands from fd 3 and writes answers to fd 4, each JSON ending in NUL.
    """

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()

        def wire() -> None:  # in the child: the pipe ends become fds 3 and 4
            read_end, write_end = os.dup(to_browser), os.dup(from_browser)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            close_fds=False,  # the pipe ends are close-on-exec; fds 3 and 4 are not
            preexec_fn=wire,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._next = 0
        self._buffer = b""
        self.session: str | None = None

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._answers, 1 << 16)
                assert chunk, "chromium closed the DevTools pipe"
                self._buffer += chunk
            raw, _, self._buffer = self._buffer.partition(b"\0")
            answer = json.loads(raw)
            if answer.get("id") == self._next:
                assert "error" not in answer, answer["error"]
                return dict(answer.get("result", {}))

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait(self, expression: str, what: str) -> Any:
        deadline = time.monotonic() + 60  # a hang guard, not a timing check
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(
            f"the page never showed {what}; it reads: {self.js('document.body.innerText')}"
        )

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        os.close(self._commands)
        os.close(self._answers)


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium package is not installed (.ci/run installs it)"
)
def test_live_page_in_chromium_starts_a_run_approves_and_shows_the_answer(server, tmp_path):
    page = server.client.get("/").text
    assert "<script src" not in page and "<link" not in page  # everything inline, no CDN
    browser = DevTools(tmp_path / "profile")
    try:
        browser.open(server.url + "/")
        browser.wait("!!document.querySelector('form[data-workflow=wf]')", "the workflow's form")
        browser.js(
            "document.querySelector('form[data-workflow=wf] input[name=topic]').value = 'owls';"
            "document.querySelector('form[data-workflow=wf]').requestSubmit()"
        )
        browser.wait(
            "document.querySelector('[data-task=fetch]')?.dataset.state === 'done'",
            "step fetch done",
        )
        browser.wait(
            "!!document.querySelector('button[data-approve=publish]')", "the approve button"
        )
        assert (
            browser.js("document.querySelector('[data-task=publish]').dataset.state") == "awaiting"
        )
        browser.js("document.querySelector('button[data-approve=publish]').click()")
        answer = browser.wait(
            "document.getElementById('run').dataset.status === 'done'"
            " && document.getElementById('answer').textContent",
            "the answer",
        )
        assert answer == "NOTIFY PUBLISH OWLS"
        states = browser.js(
            "[...document.querySelectorAll('#dag .task')].map(t => t.dataset.task + ':' +"
            " t.dataset.state)"
        )
        assert states == ["fetch:done", "publish:done", "notify:done"]
        run_id = browser.js("document.getElementById('run').dataset.run")
        assert browser.js("location.pathname") == f"/runs/{run_id}/live"
        assert server.client.get(f"/runs/{run_id}").json()["status"] == "done"
    finally:
        browser.close()


def test_planner_approvals_pause_the_loop_until_a_reviewer_decides(tmp_path):
    script = [
        _plan("x"),
        _finish("sent to bob", expect="sent to bob"),
        _plan("y"),
        _finish("not sent", expect="rejected by the reviewer: not today"),
        _plan("z"),
        _finish("sent to carol", expect="sent to carol"),
    ]
    server = _planner_server(tmp_path, script)
    try:
        approved = server.client.post("/runs", json={"workflow": "planner"}).json()["run_id"]
        server.wait_for(approved, "approval", "pending")
        record = server.client.get(f"/runs/{approved}").json()
        assert record["status"] == "running" and record["live"] is True
        assert record["pending_approvals"] == [
            {"task_id": "2", "tool": "send", "args": {"to": "bob", "body": "value of x"}}
        ]
        assert _calls(tmp_path) == ["lookup x"]  # the flagged call waits
        decided = server.client.post(f"/runs/{approved}/approvals/2", json={"action": "approve"})
        assert decided.status_code == 200, decided.text
        events = server.follow(approved)
        kinds = [(e["type"], e.get("state") or e.get("kind")) for e in events]
        assert kinds.index(("task", "awaiting_approval")) < kinds.index(("approval", "pending"))
        assert kinds.index(("approval", "decided")) < len(kinds) - 2
        assert events[-2:] == [
            {**events[-2], "type": "answer", "answer": "sent to bob"},
            {**events[-1], "type": "run", "status": "done"},
        ]
        record = server.client.get(f"/runs/{approved}").json()
        assert record["steps"] == {"1.1": "done", "1.2": "done"}
        assert record["pending_approvals"] == []
        # The loop went on from its checkpoint: the lookup did not run again.
        assert _calls(tmp_path) == ["lookup x", "send bob value of x"]

        rejected = server.client.post("/runs", json={"workflow": "planner"}).json()["run_id"]
        events = server.follow(rejected, {"2": {"action": "reject", "reason": "not today"}})
        skipped = [e for e in events if e.get("kind") == "skipped"]
        assert [e["task_id"] for e in skipped] == ["2"] and "not today" in skipped[0]["error"]
        assert server.client.get(f"/runs/{rejected}").json()["answer"] == "not sent"

        edited = server.client.post("/runs", json={"workflow": "planner"}).json()["run_id"]
        events = server.follow(edited, {"2": {"action": "edit", "args": {"to": "carol"}}})
        assert events[-2]["answer"] == "sent to carol"
        assert _calls(tmp_path)[2:] == ["lookup y", "lookup z", "send carol value of z"]
        problem = server.client.post(f"/runs/{edited}/approvals/2", json={"action": "approve"})
        assert problem.status_code == 404 and "no step of it awaits" in problem.json()["error"]
    finally:
        server.stop()


def test_a_planner_run_killed_while_paused_asks_again_after_a_resume(tmp_path):
    first = _planner_server(tmp_path, [_plan("x")])
    try:
        run_id = first.client.post("/runs", json={"workflow": "planner"}).json()["run_id"]
        first.wait_for(run_id, "approval", "pending")
        first.kill(signal.SIGKILL)
    finally:
        first.stop()
    # The plan is in the run's checkpoint: the new server's planner only joins.
    again = _planner_server(tmp_path, [_finish("sent to bob", expect="sent to bob")])
    try:
        record = again.client.get(f"/runs/{run_id}").json()
        assert record["resumable"] is True and record["pending_approvals"] == []
        assert again.client.post(f"/runs/{run_id}/resume").status_code == 202
        events = again.follow(run_id)
        assert events[-1] == {**events[-1], "type": "run", "status": "done"}
        assert again.client.get(f"/runs/{run_id}").json()["answer"] == "sent to bob"
    finally:
        again.stop()
    assert _calls(tmp_path) == ["lookup x", "send bob value of x"]
