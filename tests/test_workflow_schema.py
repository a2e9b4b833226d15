"""YAML workflows: reading, validation with positions, building, and running on test doubles."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest

from plait.backends.testing import FunctionBackend, ScriptedBackend, Step
from plait.errors import ConfigError, WorkflowValidationError
from plait.graphs import Approval, load_workflow, read_run, validate_workflow, workflow_json_schema

HELPERS = "tests.workflow_files.helpers"


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(path, env=env or {})
    return [str(p) for p in caught.value.problems]


STEPS = f"""
    backends:
      fake: {{kind: local}}
    tools:
      shout: {{function: "{HELPERS}:shout"}}
      calc: {{builtin: calculator}}
    agents:
      writer:
        instructions: You write one sentence.
        backend: fake
    inputs:
      topic: {{type: string, default: bees}}
      n: {{type: integer, default: 6}}
    workflow:
      kind: steps
      steps:
        - id: loud
          tool: shout
          args: {{text: "${{inputs.topic}}"}}
        - id: math
          tool: calculator
          args: {{expression: "${{inputs.n}} * 7"}}
        - id: write
          agent: writer
          input: "Write about ${{loud}} and ${{math}}."
      output: "${{write}}"
"""


def test_steps_workflow_runs_like_the_sdk(tmp_path):
    path = write(tmp_path, STEPS)
    scripted = ScriptedBackend(["Bees are 42 times busy."], name="fake")
    wf = load_workflow(path, backends={"fake": scripted}, runs_dir=tmp_path / "runs")
    assert set(wf.agents) == {"writer"} and "calculator" in wf.tools and "shout" in wf.tools
    events = []
    result = wf.run({"topic": "bees"}, on_event=events.append)
    assert result.ok and result.answer == "Bees are 42 times busy."
    assert result.results["loud"] == "BEES" and result.results["math"] == "42"
    # The agent got the substituted task, exactly as Agent.arun would.
    record = read_run(result.run_id, tmp_path / "runs")
    assert record.status == "done" and record.inputs == {"topic": "bees", "n": 6}
    assert record.steps == {"loud": "done", "math": "done", "write": "done"}
    assert record.usage.completion_tokens > 0
    kinds = [getattr(e, "kind", "model") for e in events]
    assert kinds.count("started") == 3 and "model" in kinds


def test_steps_plan_has_dependencies_from_references(tmp_path):
    wf = load_workflow(write(tmp_path, STEPS), backends={"fake": ScriptedBackend([])})
    plan = wf.plan()
    assert plan.by_id["write"].dependencies == {"loud", "math"}
    assert plan.by_id["math"].args == {"expression": "6 * 7"}
    assert plan.width() == 2


def test_resume_reuses_stored_results(tmp_path):
    path = write(tmp_path, STEPS)
    runs = tmp_path / "runs"
    failing = ScriptedBackend([RuntimeError("model crashed")], name="fake")
    first = load_workflow(path, backends={"fake": failing}, runs_dir=runs).run()
    assert not first.ok and first.status == "failed" and "write" in (first.error or "")
    again = ScriptedBackend(["Done."], name="fake")
    events = []
    second = load_workflow(path, backends={"fake": again}, runs_dir=runs).run(
        run_id=first.run_id, on_event=events.append
    )
    assert second.ok and second.answer == "Done."
    restored = {e.task_id for e in events if getattr(e, "kind", "") == "restored"}
    assert restored == {"loud", "math"}


def test_planner_workflow_runs_the_planned_tools(tmp_path):
    path = write(
        tmp_path,
        """
        tools:
          calc: {builtin: calculator}
        inputs:
          question: {default: "What is 17 * 23?"}
        workflow:
          kind: planner
          question: ${inputs.question}
          backend: brain
          tools: [calc]
        backends:
          brain: {kind: local}
        """,
    )
    plan = json.dumps({"tasks": [{"tool": "calculator", "args": {"expression": "17 * 23"}}]})
    join = json.dumps({"answer": "17 * 23 is 391.", "action": "finish"})
    brain = ScriptedBackend([plan, join], name="brain")
    result = load_workflow(path, backends={"brain": brain}, runs_dir=tmp_path / "r").run()
    assert result.ok and result.answer == "17 * 23 is 391."
    assert result.results == {"1.1": "391"}


APPROVED_PLANNER = """
    backends:
      brain: {kind: local}
    tools:
      calc: {builtin: calculator}
    workflow:
      kind: planner
      question: What is 17 * 23?
      backend: brain
      tools: [calc]
      requires_approval: [calc]
      max_replans: 0
    """


def _approved_planner(tmp_path: Path, join_expects: str) -> tuple[Path, ScriptedBackend]:
    plan = json.dumps({"tasks": [{"tool": "calculator", "args": {"expression": "17 * 23"}}]})
    join = Step(json.dumps({"answer": "done", "action": "finish"}), expect=join_expects)
    return write(tmp_path, APPROVED_PLANNER), ScriptedBackend([plan, join], name="brain")


def test_planner_requires_approval_without_a_reviewer_rejects_the_flagged_calls(tmp_path):
    # An entry name flags each of its tools; with no reviewer they do not run.
    path, brain = _approved_planner(tmp_path, "rejected by the reviewer: no approver")
    result = load_workflow(path, backends={"brain": brain}, runs_dir=tmp_path / "r").run()
    assert result.ok and result.answer == "done"
    assert read_run(result.run_id, tmp_path / "r").steps == {"1.1": "skipped"}


async def test_planner_requires_approval_asks_the_approver_and_applies_an_edit(tmp_path):
    path, brain = _approved_planner(tmp_path, "408")
    asked = []

    async def approver(task, args):
        asked.append((task.id, task.tool, args))
        return Approval(action="edit", args={"expression": "17 * 24"})

    wf = load_workflow(path, backends={"brain": brain}, runs_dir=tmp_path / "r")
    result = await wf.arun(approver=approver)
    assert asked == [("1", "calculator", {"expression": "17 * 23"})]
    assert result.ok and result.results == {"1.1": "408"}


def test_planner_requires_approval_names_an_offered_tool(tmp_path):
    path = write(
        tmp_path,
        """
        backends:
          brain: {kind: local}
        tools:
          calc: {builtin: calculator}
          other: {builtin: calculator}
        workflow:
          kind: planner
          question: hi
          backend: brain
          tools: [calc]
          requires_approval: [calculator, mail]
        """,
    )
    (found,) = problems(path)
    assert "workflow.requires_approval[1]" in found and "'mail'" in found
    assert "offered: calc, calculator" in found


def test_include_brings_agents_and_reports_duplicates_with_both_places(tmp_path):
    write(
        tmp_path,
        """
        agents:
          writer: {instructions: Shared writer.}
        """,
        "agents.yaml",
    )
    main = write(
        tmp_path,
        """
        include: [agents.yaml]
        workflow:
          kind: steps
          steps: [{id: a, agent: writer, input: hi}]
        """,
    )
    spec = validate_workflow(main, env={})
    assert spec.agents["writer"].instructions == "Shared writer."
    clash = write(
        tmp_path,
        """
        include: agents.yaml
        agents:
          writer: {instructions: Mine.}
        workflow: {kind: steps, steps: [{id: a, agent: writer}]}
        """,
        "clash.yaml",
    )
    (found,) = problems(clash)
    assert "agents.yaml:2:3: agents.writer: agents entry 'writer' is already defined at" in found
    assert found.endswith("clash.yaml:3:3")


def test_every_problem_is_reported_at_once_with_positions_and_hints(tmp_path):
    path = write(
        tmp_path,
        """
        backends:
          small: {kind: local, temperature: hot}
        tools:
          calc: {builtin: calculator}
        agents:
          writer:
            instructions: Write.
            backend: smal
            tools: [calc, serch]
            outptu: {}
        workflow:
          kind: steps
          steps:
            - id: a
              agent: writter
              input: "${b} and ${inputs.topic}"
            - id: b
              tool: calculator
              args: {expression: "${a}"}
        """,
    )
    found = problems(path)
    expected = [
        "wf.yaml:2:37: backends.small.temperature: Input should be a valid number",
        "wf.yaml:8:14: agents.writer.backend: unknown backend 'smal' (did you mean 'small'?)",
        "wf.yaml:9:19: agents.writer.tools[1]: unknown tool 'serch'",
        "wf.yaml:10:5: agents.writer.outptu: unknown key 'outptu' (did you mean 'output'?)",
        "wf.yaml:15:14: workflow.steps[0].agent: unknown agent 'writter' (did you mean 'writer'?)",
        "wf.yaml:16:14: workflow.steps[0].input: unknown input 'topic'",
        "steps depend on each other in a cycle: a -> b -> a",
    ]
    for text in expected:
        assert any(text in f for f in found), (text, found)
    assert len(found) == len(expected)


def test_yaml_syntax_error_has_its_position(tmp_path):
    path = write(tmp_path, "workflow:\n  kind: steps\n  steps: [\n")
    (found,) = problems(path)
    assert found.startswith("wf.yaml:4:1: invalid YAML") or "invalid YAML" in found


def test_missing_kind_and_missing_workflow(tmp_path):
    (found,) = problems(write(tmp_path, "workflow: {steps: []}\n"))
    assert "wf.yaml:1:11: workflow.kind: missing or unknown 'kind'" in found
    (found,) = problems(write(tmp_path, "agents: {}\n", "none.yaml"))
    assert "the file has no 'workflow' section" in found


def test_env_substitution_and_secrets_never_echoed(tmp_path):
    path = write(
        tmp_path,
        """
        backends:
          remote: {kind: openai, model: m, base_url: "${BASE}", timeout_s: "${SECRET}"}
        workflow: {kind: steps, steps: [{id: a, tool: x}]}
        tools:
          x: {function: "tests.workflow_files.helpers:shout"}
        """,
    )
    found = problems(path, env={"BASE": "http://127.0.0.1:1/v1", "SECRET": "sk-hunter2"})
    text = "\n".join(found)
    assert "sk-hunter2" not in text and "timeout_s" in text
    found = problems(path, env={"SECRET": "1"})
    assert any(
        "wf.yaml:2:46: backends.remote.base_url: environment variable BASE" in f for f in found
    )
    # ${...} inside the workflow section refers to inputs and steps, not the environment.
    spec = validate_workflow(path, env={"BASE": "http://h/v1", "SECRET": "5"})
    assert spec.backends["remote"].base_url == "http://h/v1"  # type: ignore[union-attr]


def test_router_references_and_cycles(tmp_path):
    path = write(
        tmp_path,
        """
        backends:
          local: {kind: local}
          a: {kind: router, policy: fallback, chain: [b, local]}
          b: {kind: router, policy: fallback, chain: [a]}
          c: {kind: router, policy: rules, rules: [{backend: lcoal, agent: x}]}
        workflow: {kind: planner, question: hi, backend: a}
        """,
    )
    found = "\n".join(problems(path))
    assert "routers refer to each other in a cycle: a -> b -> a" in found
    assert "backends.c.rules[0].backend: unknown backend 'lcoal' (did you mean 'local'?)" in found
    assert "a rules router needs a 'default' backend" in found


def test_inputs_are_typed_and_required(tmp_path):
    path = write(
        tmp_path,
        f"""
        tools: {{shout: {{function: "{HELPERS}:shout"}}}}
        inputs: {{n: {{type: integer}}, text: {{}}}}
        workflow:
          kind: steps
          steps: [{{id: a, tool: shout, args: {{text: "${{inputs.text}}"}}}}]
        """,
    )
    wf = load_workflow(path, runs_dir=tmp_path / "runs")
    assert wf.resolve_inputs({"n": "3", "text": "x"}) == {"n": 3, "text": "x"}
    with pytest.raises(ConfigError, match="input 'n' is required"):
        wf.resolve_inputs({"text": "x"})
    with pytest.raises(ConfigError, match="must be an integer"):
        wf.resolve_inputs({"n": "three", "text": "x"})
    with pytest.raises(ConfigError, match="unknown input"):
        wf.resolve_inputs({"n": 1, "text": "x", "oops": 1})


def test_function_tool_that_cannot_be_imported_is_a_config_error(tmp_path):
    path = write(
        tmp_path,
        """
        tools: {t: {function: "no_such_module_xyz:f"}}
        workflow: {kind: steps, steps: [{id: a, tool: t}]}
        """,
    )
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        load_workflow(path)


def test_json_schema_describes_the_sections():
    schema = workflow_json_schema()
    assert set(schema["properties"]) >= {"backends", "tools", "memory", "agents", "workflow"}
    assert "StepsWorkflow" in schema["$defs"] and "PlannerWorkflow" in schema["$defs"]


def test_examples_validate():
    root = Path(__file__).resolve().parents[1] / "examples"
    files = sorted(root.glob("*.yaml"))
    assert files
    for path in files:
        validate_workflow(path)


@pytest.mark.local_model
def test_drone_example_answers_from_both_files_in_parallel(tmp_path):
    root = Path(__file__).resolve().parents[1] / "examples"
    wf = load_workflow(root / "drone_qa.yaml", runs_dir=tmp_path / "runs")
    events = []
    result = wf.run(on_event=events.append)
    assert result.ok
    read = sorted(str(r) for r in result.results.values())
    assert len(read) == 2 and "Falcon" in read[0] and "Heron" in read[1]
    started = [e for e in events if getattr(e, "kind", "") == "started"]
    assert len(started) == 2
    assert "34" in result.answer and "52" in result.answer


FAILING_STEPS = """
    backends:
      fake: {kind: local}
    tools:
      calc: {builtin: calculator}
    agents:
      writer:
        instructions: You write one sentence.
        backend: fake
    workflow:
      kind: steps
      steps:
        - id: math
          tool: calculator
          args: {expression: "${inputs.expression}"}
        - id: write
          agent: writer
          input: "Write about bees."
    inputs:
      expression: {type: string, default: "6 * 7"}
"""


def test_a_usage_error_in_a_step_surfaces_while_a_tool_error_fails_the_step(tmp_path):
    path = write(tmp_path, FAILING_STEPS)
    runs = tmp_path / "runs"
    # A ToolError (a run-time failure) fails just its step; the run reports it.
    fine = ScriptedBackend(["Bees hum."], name="fake")
    failed = load_workflow(path, backends={"fake": fine}, runs_dir=runs).run({"expression": "6 *"})
    assert failed.status == "failed" and failed.results == {"write": "Bees hum."}
    assert read_run(failed.run_id, runs).steps["math"].startswith("failed (ToolError: cannot")
    # A ConfigError from inside a step (the agent's backend is misconfigured) is
    # no failed step: it surfaces as itself, and the run's record says so.
    problem = ConfigError("backend 'fake': no model file at /nowhere.gguf")
    broken = FunctionBackend(lambda request: problem, name="fake")
    wf = load_workflow(path, backends={"fake": broken}, runs_dir=runs)
    with pytest.raises(ConfigError, match="no model file"):
        wf.run(run_id="misconfigured")
    record = read_run("misconfigured", runs)
    assert record.status == "failed" and "ConfigError: backend 'fake'" in (record.error or "")


async def test_a_cancelled_run_is_recorded_as_interrupted_and_the_cancellation_propagates(
    tmp_path,
):
    asked = asyncio.Event()

    async def hangs(request):
        asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    path = write(tmp_path, FAILING_STEPS)
    runs = tmp_path / "runs"
    wf = load_workflow(path, backends={"fake": FunctionBackend(hangs, name="fake")}, runs_dir=runs)
    running = asyncio.create_task(wf.arun(run_id="cancelled"))
    await asked.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    record = read_run("cancelled", runs)
    assert record.status == "interrupted" and record.steps == {}
