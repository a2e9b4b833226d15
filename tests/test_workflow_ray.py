"""YAML ``executor: ray``: tool steps run on a real local Ray cluster, agent steps on the driver."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plait.backends.testing import ScriptedBackend
from plait.graphs import load_workflow, validate_workflow
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
    assert "on the driver (their models or stores stay here): writer" in out
