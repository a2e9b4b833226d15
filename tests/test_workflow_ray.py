"""YAML ``executor: ray`` on a real local Ray cluster: tool steps and agents on servers or
Ray actors run on workers, agents on in-process models on the driver."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plait.backends.testing import ScriptedBackend
from plait.graphs import ModelCall, load_workflow, validate_workflow
from plait.tracing import read_trace

ray = pytest.importorskip("ray")

TOOLS = '''
import os


def where(label: str) -> str:
    """The process a call ran in.

    Args:
        label: a label.
    """
    return f"{label}@{os.getpid()}"


def pooled_model():
    """The backend inside the test's RayModelPool actor."""
    from plait.backends.testing import ScriptedBackend

    return ScriptedBackend(["Pooled answer."], name="pooled")
'''

WORKFLOW = """
backends:
  fake: {kind: local}
tools:
  where: {function: "ray_wf_tools:where"}
agents:
  writer: {instructions: You write one sentence., backend: fake}
workflow:
  kind: steps
  executor: {kind: ray, num_cpus: 1}
  steps:
    - {id: left, tool: where, args: {label: left}}
    - {id: right, tool: where, args: {label: right}}
    - {id: write, agent: writer, input: "Say ${left} and ${right}."}
  output: "${left} ${right} ${write}"
"""


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("ray_tools")
    (folder / "ray_wf_tools.py").write_text(textwrap.dedent(TOOLS))
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def cluster(tools_dir: Path) -> Iterator[Any]:
    given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [*given, *(p for p in sys.path if p not in given)]
    # Ray puts the driver's folder first on the workers' path; the tools' folder
    # holds nothing that shadows the package (a source checkout's root would).
    here = os.getcwd()
    os.chdir(tools_dir)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",  # loopback only: tests may not leave the machine
        # The workers import plait as this process does: PYTHONPATH first, then sys.path.
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(tools_dir), *paths])}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        os.chdir(here)


def test_tool_steps_run_on_ray_workers_and_agent_steps_on_the_driver(cluster, tools_dir, tmp_path):
    path = tools_dir / "wf.yaml"
    path.write_text(textwrap.dedent(WORKFLOW).lstrip())
    spec = validate_workflow(path)
    assert spec.workflow.executor.kind == "ray"  # type: ignore[union-attr]
    writer = ScriptedBackend(["Done."], name="fake")
    workflow = load_workflow(path, backends={"fake": writer}, runs_dir=tmp_path / "runs")
    result = workflow.run()
    assert result.ok, result.error
    left, right, answer = str(result.answer).split(" ", 2)
    pids = {int(left.split("@")[1]), int(right.split("@")[1])}
    assert os.getpid() not in pids  # the tool calls ran in Ray worker processes
    assert answer == "Done."  # the agent ran here, on its in-process backend
    writer.assert_exhausted()

    # The workers' spans reached the run's trace, each under its task's span.
    spans = read_trace(Path(result.run_dir) / "trace.jsonl")
    tasks = {s["attributes"].get("plait.task.id"): s for s in spans if s["name"] == "plait.task"}
    workers = [s for s in spans if s["name"] == "plait.worker"]
    assert sorted(w["attributes"]["plait.task.id"] for w in workers) == ["left", "right"]
    for worker in workers:
        task = tasks[worker["attributes"]["plait.task.id"]]
        assert worker["parent_id"] == task["span_id"]
        assert worker["trace_id"] == task["trace_id"]
        assert worker["attributes"]["process.pid"] in pids


def test_the_executor_field_is_checked_with_its_position(tools_dir):
    path = tools_dir / "bad.yaml"
    path.write_text(
        textwrap.dedent(WORKFLOW).lstrip().replace("{kind: ray, num_cpus: 1}", "{kind: spark}")
    )
    from plait.errors import WorkflowValidationError

    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(path)
    assert any("workflow.executor" in str(p) for p in caught.value.problems)


def test_validate_says_which_tasks_stay_on_the_driver(tools_dir, capsys):
    from plait.cli import main

    path = tools_dir / "wf.yaml"
    path.write_text(textwrap.dedent(WORKFLOW).lstrip())
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "executor ray (a local cluster): tool tasks run on Ray workers" in out
    assert "on the driver: writer (its backend 'fake' is an in-process model)" in out


# An OpenAI-compatible server on loopback: one canned answer, with usage.
CHAT_SERVER = """
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Chat(BaseHTTPRequestHandler):
    def _send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send({"data": [{"id": "canned"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        message = {"role": "assistant", "content": "Written remotely."}
        usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
        self._send({"choices": [{"message": message, "finish_reason": "stop"}], "usage": usage})

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Chat).serve_forever()
"""

REMOTE_AGENT = """
backends:
  remote: {{kind: openai, model: canned, base_url: "{url}", api_key_env: null, max_attempts: 1}}
  fake: {{kind: local}}
tools:
  where: {{function: "ray_wf_tools:where"}}
agents:
  writer: {{instructions: You write one sentence., backend: remote}}
  local_writer: {{instructions: You write one sentence., backend: fake}}
workflow:
  kind: steps
  executor: ray
  steps:
    - {{id: left, tool: where, args: {{label: left}}}}
    - {{id: write, agent: writer, input: "Say ${{left}}."}}
    - {{id: here, agent: local_writer, input: "Say ${{left}}."}}
  output: "${{write}} ${{here}}"
"""


def test_agents_on_servers_run_on_workers_and_their_calls_are_counted(
    cluster, tools_dir, tmp_path, capsys
):
    from _servers import free_port, running_server

    from plait.cli import main

    port = free_port()
    (tmp_path / "chat_server.py").write_text(textwrap.dedent(CHAT_SERVER))
    url = f"http://127.0.0.1:{port}/v1"
    path = tools_dir / "remote.yaml"
    path.write_text(textwrap.dedent(REMOTE_AGENT.format(url=url)).lstrip())
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "tool tasks and agents writer run on Ray workers" in out
    assert "on the driver: local_writer (its backend 'fake' is an in-process model)" in out
    command = [sys.executable, str(tmp_path / "chat_server.py"), str(port)]
    with running_server(command, f"{url}/models", log_path=tmp_path / "server.log"):
        here = ScriptedBackend(["Written here."], name="fake")
        workflow = load_workflow(path, backends={"fake": here}, runs_dir=tmp_path / "runs")
        events: list[Any] = []
        result = workflow.run(on_event=events.append)
    assert result.ok, result.error
    assert result.answer == "Written remotely. Written here."
    # The worker's model call reached this run's meter: usage, and the event.
    calls = [e for e in events if isinstance(e, ModelCall)]
    remote = [c for c in calls if c.agent == "writer"]
    assert len(remote) == 1 and remote[0].usage.completion_tokens == 3
    assert remote[0].usage.prompt_tokens == 11
    assert result.usage.completion_tokens == sum(c.usage.completion_tokens for c in calls)
    spans = read_trace(Path(result.run_dir) / "trace.jsonl")
    workers = {s["attributes"]["plait.task.id"]: s for s in spans if s["name"] == "plait.worker"}
    assert sorted(workers) == ["left", "write"]  # the local model's agent stayed here
    assert workers["write"]["attributes"]["process.pid"] != os.getpid()
    # The agent's own spans, made in the worker, hang under its worker span.
    inside = [s for s in spans if s["parent_id"] == workers["write"]["span_id"]]
    assert inside and all(s["trace_id"] == workers["write"]["trace_id"] for s in inside)


POOL_AGENT = """
backends:
  pool: {kind: local}
agents:
  writer: {instructions: You write one sentence., backend: pool}
workflow:
  kind: steps
  executor: ray
  steps:
    - {id: write, agent: writer, input: "Say something."}
"""


def test_an_agent_on_a_ray_model_pool_runs_on_a_worker_against_the_pools_actors(
    cluster, tools_dir, tmp_path
):
    import ray_wf_tools

    from plait.backends.ray import RayModelPool

    path = tools_dir / "pool.yaml"
    path.write_text(textwrap.dedent(POOL_AGENT).lstrip())
    pool = RayModelPool(ray_wf_tools.pooled_model, replicas=1, num_cpus=0.5, name="pool")
    workflow = load_workflow(path, backends={"pool": pool}, runs_dir=tmp_path / "runs")
    try:
        result = workflow.run()
        assert result.ok, result.error
        assert result.answer == "Pooled answer."
        spans = read_trace(Path(result.run_dir) / "trace.jsonl")
        (worker,) = [s for s in spans if s["name"] == "plait.worker"]
        assert worker["attributes"]["process.pid"] != os.getpid()
        # The worker's copy of the pool asked this pool's actor (no pool of its own).
        assert asyncio.run(pool.served_counts()) == [1]
    finally:
        asyncio.run(pool.aclose())
