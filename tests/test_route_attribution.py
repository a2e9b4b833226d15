"""A routed call is attributed to the backend that answered it, not to the router's first one:
in the trace, the HTML report and ``plait runs show``. Real servers on loopback: the first
backend of the chain is a closed port, the fallback a small OpenAI-compatible server."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from plait.cli import main


class _Answer(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        events = [
            {"model": "backup-model", "choices": [{"delta": {"content": "from the backup"}}]},
            {"choices": [{"delta": {}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}},
        ]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backup_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_the_fallback_that_answered_is_named_everywhere(tmp_path, monkeypatch, capsys, backup_url):
    state = tmp_path / "state"
    monkeypatch.setenv("PLAIT_STATE_DIR", str(state))
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(
        textwrap.dedent(
            f"""
            backends:
              remote: {{kind: openai, model: m, base_url: "http://127.0.0.1:{_closed_port()}/v1",
                        api_key_env: null, max_attempts: 1}}
              backup: {{kind: openai, model: m, base_url: "{backup_url}", api_key_env: null}}
              chain: {{kind: router, policy: fallback, chain: [remote, backup]}}
            agents:
              writer: {{instructions: Write., backend: chain, max_turn_tokens: 20}}
            workflow:
              kind: steps
              steps:
                - {{id: w, agent: writer, input: hello}}
            """
        ).lstrip()
    )
    assert main(["run", str(workflow), "-q"]) == 0
    assert capsys.readouterr().out.strip() == "from the backup"
    (run_dir,) = (state / "runs").iterdir()

    spans = [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines()]
    (chat,) = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "chat"]
    assert chat["attributes"]["plait.route.backend"] == "backup"
    assert chat["attributes"]["plait.route.router"] == "chain"
    outcomes = [
        (e["attributes"]["plait.route.backend"], e["attributes"]["plait.route.outcome"])
        for e in chat["events"]
        if e["name"] == "plait.route"
    ]
    assert outcomes == [("remote", "error"), ("backup", "ok")]

    assert main(["runs", "show", run_dir.name]) == 0
    shown = capsys.readouterr().out
    assert "writer: 1 call(s) answered by backup (router chain)" in shown
    assert "answered by remote" not in shown

    assert main(["runs", "show", run_dir.name, "--html"]) == 0
    capsys.readouterr()
    html = Path(run_dir / "report.html").read_text()
    row = html.split("<td>writer</td>", 1)[1].split("</tr>", 1)[0]
    assert row.startswith("<td>chain</td><td>backup</td>"), row


class _DownOnce(_Answer):
    """Answers 500 to its first request, then streams like the backup (recovered)."""

    calls = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        type(self).calls += 1
        if type(self).calls > 1:
            super().do_POST()
            return
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": {"message": "overloaded"}}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def down_once_url() -> Iterator[str]:
    _DownOnce.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DownOnce)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_circuit_that_opens_and_closes_shows_in_trace_report_and_runs_show(
    tmp_path, monkeypatch, capsys, backup_url, down_once_url
):
    state = tmp_path / "state"
    monkeypatch.setenv("PLAIT_STATE_DIR", str(state))
    workflow = tmp_path / "wf.yaml"
    # One failure opens the circuit; no cool-down, so the second step's call is the
    # half-open probe, which the recovered server answers.
    workflow.write_text(
        textwrap.dedent(
            f"""
            backends:
              remote: {{kind: openai, model: m, base_url: "{down_once_url}",
                        api_key_env: null, max_attempts: 1}}
              backup: {{kind: openai, model: m, base_url: "{backup_url}", api_key_env: null}}
              chain: {{kind: router, policy: fallback, chain: [remote, backup],
                       breaker: {{failures: 1, cooldown_s: 0}}}}
            agents:
              writer: {{instructions: Write., backend: chain, max_turn_tokens: 20}}
              editor: {{instructions: Edit., backend: chain, max_turn_tokens: 20}}
            workflow:
              kind: steps
              steps:
                - {{id: w, agent: writer, input: hello}}
                - {{id: e, agent: editor, input: "${{w}}"}}
            """
        ).lstrip()
    )
    assert main(["run", str(workflow), "-q"]) == 0
    capsys.readouterr()
    (run_dir,) = (state / "runs").iterdir()

    spans = [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines()]
    breaker_events = [
        (
            s["attributes"]["gen_ai.agent.name"],
            e["attributes"]["plait.breaker.backend"],
            e["attributes"]["plait.breaker.state"],
        )
        for s in sorted(spans, key=lambda s: s["start"])
        for e in s.get("events", [])
        if e["name"] == "plait.breaker"
    ]
    assert breaker_events == [("writer", "remote", "open"), ("editor", "remote", "closed")]
    reasons = [
        e["attributes"]["plait.route.reason"]
        for s in spans
        for e in s.get("events", [])
        if e["name"] == "plait.route" and e["attributes"]["plait.route.outcome"] == "ok"
    ]
    assert any("remote: circuit opened" in r for r in reasons)
    assert any("circuit of remote closed" in r for r in reasons)

    assert main(["runs", "show", run_dir.name]) == 0
    shown = capsys.readouterr().out
    assert "breaker:  remote opened in router chain (1 failure(s) within 30s" in shown
    assert "breaker:  remote closed in router chain (its half-open probe answered" in shown
    assert shown.index("remote opened") < shown.index("remote closed")

    assert main(["runs", "show", run_dir.name, "--html"]) == 0
    capsys.readouterr()
    html = Path(run_dir / "report.html").read_text()
    table = html.split("<h2>Circuit breakers</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<td>writer</td><td>chain</td><td>remote</td><td>open</td>" in table
    assert "<td>editor</td><td>chain</td><td>remote</td><td>closed</td>" in table
