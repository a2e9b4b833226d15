"""Supervisor workflows: YAML -> the same team as the SDK, validation, budget stops, CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from plait import ChatRequest
from plait.agents import Review, Supervisor, TeamDecision
from plait.backends.routing import CostLedger
from plait.backends.testing import FunctionBackend
from plait.cli import main
from plait.errors import WorkflowValidationError
from plait.graphs import dag_dispatch, load_workflow, read_run, validate_workflow

ROOT = Path(__file__).resolve().parents[1]

TEAM = """
backends:
  brain: {kind: local}
  cheap: {kind: local}
  strong: {kind: local}
agents:
  poet:
    instructions: You write a two-line poem.
    backend: cheap
inputs:
  topic: {default: tea}
workflow:
  kind: supervisor
  goal: Write about ${inputs.topic}.
  backend: brain
  workers: [cheap, strong]
  reviewer: brain
  brief: "Team brief: about ${inputs.topic}."
  agents: [poet]
  max_attempts: 2
"""


def write(tmp_path: Path, text: str, name: str = "team.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def last(request: ChatRequest) -> str:
    return getattr(request.messages[-1], "content", "") or ""


def model(request: ChatRequest) -> str:
    """One scripted team: a plan, workers, a reviewer that sends 'facts' up a tier once."""
    agent = request.agent or ""
    if agent == "lead-planner":
        assert "Goal: Write about tea." in last(request)
        role = {"name": "writer", "instructions": "You write facts."}
        return json.dumps(
            {
                "subtasks": [
                    {"id": "facts", "task": "List tea facts.", "role": role},
                    {"id": "poem", "task": "A poem.", "agent": "poet", "needs": ["facts"]},
                ]
            }
        )
    if agent == "lead-reviewer":
        if "cheap facts" in last(request):
            return Review(verdict="reassign", feedback="too thin").model_dump_json()
        return Review(verdict="accept").model_dump_json()
    if agent == "writer-facts":
        return "facts from the worker"
    if agent == "poet":
        assert "[facts]" in last(request)
        return "Tea in the pot, / warm as the sun."
    if agent == "lead-aggregator":
        return "Tea: facts and a poem."
    raise AssertionError(f"unexpected caller {agent}")


def backends() -> dict[str, FunctionBackend]:
    def tier(name: str) -> FunctionBackend:
        def reply(request: ChatRequest) -> str:
            text = model(request)
            return text.replace("facts from ", f"{name} facts from ")

        return FunctionBackend(reply, name=name)

    return {"brain": tier("brain"), "cheap": tier("cheap"), "strong": tier("strong")}


def decisions(items: list[TeamDecision]) -> list[tuple[str, str, str, str | None, float]]:
    return [(d.kind, d.subject, d.detail, d.backend, d.cost) for d in items]


def test_supervisor_workflow_decides_like_the_sdk(tmp_path):
    events: list[Any] = []
    wf = load_workflow(write(tmp_path, TEAM), backends=backends(), runs_dir=tmp_path / "runs")
    result = wf.run(on_event=events.append)

    sdk_backends = backends()
    poet = wf.agents["poet"]
    poet.backend = sdk_backends["cheap"]  # the same agent, on an unmetered double
    team = Supervisor(
        "lead",
        sdk_backends["brain"],
        workers=[sdk_backends["cheap"], sdk_backends["strong"]],
        brief="Team brief: about tea.",
        agents=[poet],
        reviewer=sdk_backends["brain"],
        ledger=CostLedger(),
        dispatch=dag_dispatch(),
        max_attempts=2,
    )
    expected = team.run("Write about tea.")

    assert expected.ok and result.ok
    assert result.answer == expected.output == "Tea: facts and a poem."
    assert result.team is not None
    assert decisions(result.team.decisions) == decisions(expected.trace.decisions)
    # The reassignment really happened: facts ran on cheap, then on strong.
    assert result.team.workers[0].backends == ("cheap", "strong")
    assert [d.kind for d in result.team.of_kind("escalate")] == ["escalate"]
    # Every decision was reported live, in order, among the executor's task events.
    live = [e for e in events if isinstance(e, TeamDecision)]
    assert decisions(live) == decisions(result.team.decisions)
    started = [e.task_id for e in events if getattr(e, "kind", "") == "started"]
    assert started == ["facts", "poem"]
    # The run record keeps the trace and per-subtask statuses.
    record = read_run(result.run_id, tmp_path / "runs")
    assert record.kind == "supervisor" and record.status == "done"
    assert record.steps == {"facts": "accepted", "poem": "accepted"}
    assert record.team is not None and len(record.team["decisions"]) == len(live)
    assert result.results["poem"] == "Tea in the pot, / warm as the sun."


FIXED = """
backends:
  cloud:
    kind: openai
    model: big
    api_key_env: null
    price: {prompt_per_1k: 1.0, completion_per_1k: 1.0}
workflow:
  kind: supervisor
  goal: Greet twice.
  workers: [default, cloud]
  aggregate: false
  budget: 0.5
  plan:
    - id: one
      task: Say hi.
      role: {name: greeter, instructions: You greet.}
    - id: two
      task: Say hello, a hard one.
      role: {name: greeter, instructions: You greet.}
      hard: true
      needs: [one]
"""


def test_fixed_plan_runs_without_a_planning_call_and_budget_stop_is_reported(tmp_path):
    calls: list[str] = []

    def local(request: ChatRequest) -> str:
        calls.append(request.agent or "")
        return "Hi!"

    def cloud(request: ChatRequest) -> str:
        raise AssertionError("the budget must keep the cloud tier from being hired")

    wf = load_workflow(
        write(tmp_path, FIXED),
        backends={"default": FunctionBackend(local), "cloud": FunctionBackend(cloud, name="cloud")},
        runs_dir=tmp_path / "runs",
    )
    result = wf.run()
    assert calls == ["greeter-one"]  # no planner, no aggregator: the fixed plan, joined
    assert not result.ok and result.status == "failed"
    assert result.error is not None and result.error.startswith("budget: subtask two")
    assert result.answer == "Hi!"  # the one accepted result
    assert result.team is not None and result.team.stop_reason == "budget"
    assert [d.subject for d in result.team.of_kind("skip_hire")] == ["two"]
    record = read_run(result.run_id, tmp_path / "runs")
    assert record.status == "failed" and record.team is not None
    assert record.team["stop_reason"] == "budget"
    assert record.steps["one"] == "accepted" and record.steps["two"].startswith("not_hired")


def test_supervisor_validation_errors_have_positions_and_hints(tmp_path):
    path = write(
        tmp_path,
        """
        agents:
          poet: {instructions: Write.}
        workflow:
          kind: supervisor
          goal: Write about ${inputs.topic}.
          workers: [default, strnog]
          reviewer: judge
          agents: [poet, peot]
          worker_limits: {max_step: 2}
          plan:
            - id: a
              task: A.
              agent: poet
            - id: b
              task: B.
              neds: [a]
            - id: c
              task: C.
              role: {name: r, instructions: Do.}
              needs: [d, a]
        """,
    )
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(path, env={})
    found = [str(p) for p in caught.value.problems]
    expected = [
        "team.yaml:5:9: workflow.goal: unknown input 'topic'",
        "team.yaml:6:22: workflow.workers[1]: unknown backend 'strnog'",
        "team.yaml:7:13: workflow.reviewer: unknown backend 'judge'",
        "team.yaml:8:18: workflow.agents[1]: unknown agent 'peot' (did you mean 'poet'?)",
        "team.yaml:9:19: workflow.worker_limits.max_step: unknown key 'max_step'"
        " (did you mean 'max_steps'?)",
        "team.yaml:14:7: workflow.plan[1]: a subtask needs a 'role' or an 'agent'",
        "team.yaml:16:7: workflow.plan[1].neds: unknown key 'neds' (did you mean 'needs'?)",
        "team.yaml:20:15: workflow.plan[2].needs[0]: subtask 'd' is not an earlier subtask",
    ]
    for text in expected:
        assert any(text in f for f in found), (text, found)
    assert len(found) == len(expected), found


def test_plan_agent_must_be_offered_to_the_supervisor(tmp_path):
    path = write(
        tmp_path,
        """
        agents:
          poet: {instructions: Write.}
        workflow:
          kind: supervisor
          goal: Go.
          plan:
            - {id: a, task: A., agent: poet}
        """,
    )
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(path, env={})
    (found,) = [str(p) for p in caught.value.problems]
    assert "team.yaml:7:32: workflow.plan[0].agent: agent 'poet' is not offered" in found
    assert "add it to workflow.agents" in found


def test_graph_of_a_supervisor_workflow(capsys):
    assert main(["graph", str(ROOT / "examples" / "team_greetings.yaml")]) == 0
    out = capsys.readouterr().out
    assert "lead -- hires --> english" in out and "spanish --> combine" in out


@pytest.mark.local_model
def test_team_example_runs_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))
    example = ROOT / "examples" / "team_greetings.yaml"
    assert main(["run", str(example), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["ok"] and result["team"]["stop_reason"] == "done"
    assert result["answer"].startswith("[english] ") and "\n[spanish] " in result["answer"]
    assert "Hola" in result["results"]["spanish"]
    assert "in parallel with" in captured.err and "hire english" in captured.err
    # The brief is one shared prefix: the second worker reused cached tokens.
    assert result["usage"]["cached_prompt_tokens"] > 0
