"""YAML: tool_selection on agents and planners, examples on function tools."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from plait.errors import WorkflowValidationError
from plait.graphs import load_workflow, validate_workflow
from plait.tools import ToolSelection

HELPERS = "tests.workflow_files.helpers"


@pytest.fixture(autouse=True)
def _importable_helpers(monkeypatch):
    # The helper module is imported by name, as a workflow file would name it.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_tool_selection_and_examples_are_built(tmp_path):
    path = write(
        tmp_path,
        f"""
        backends:
          small: {{kind: local}}
        tools:
          shout:
            function: "{HELPERS}:shout"
            examples:
              - {{request: "say hello loudly", arguments: {{text: hello}}}}
        agents:
          plain:
            instructions: Shout.
            backend: small
            tools: [shout]
            tool_selection: embedding
          tuned:
            instructions: Shout.
            backend: small
            tools: [shout]
            tool_selection: {{policy: hybrid, k: 2, fix_margin: 0.1, examples: 1}}
          default:
            instructions: Shout.
            backend: small
            tools: [shout]
        workflow:
          kind: planner
          question: "go"
          tools: [shout]
          tool_selection: model
        """,
    )
    workflow = load_workflow(path)
    assert workflow.agents["plain"].tool_selection == ToolSelection(policy="embedding")
    assert workflow.agents["tuned"].tool_selection == ToolSelection(
        policy="hybrid", k=2, fix_margin=0.1, examples=1
    )
    assert workflow.agents["default"].tool_selection is None
    (shout,) = workflow.agents["plain"].tools
    assert shout.examples[0].request == "say hello loudly"
    assert dict(shout.examples[0].arguments) == {"text": "hello"}


def test_bad_selection_and_example_keys_are_reported_with_positions(tmp_path):
    path = write(
        tmp_path,
        f"""
        backends:
          small: {{kind: local}}
        tools:
          shout:
            function: "{HELPERS}:shout"
            examples:
              - {{request: "", argumnets: {{}}}}
        agents:
          a:
            instructions: Shout.
            backend: small
            tools: [shout]
            tool_selection: best
          b:
            instructions: Shout.
            backend: small
            tools: [shout]
            tool_selection: {{policy: hybrid, kk: 2}}
        workflow:
          kind: planner
          question: "go"
          tools: [shout]
          tool_selection: {{policy: embedding, margin: -1}}
        """,
    )
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(path, env={})
    found = [str(p) for p in caught.value.problems]
    expected = [
        "wf.yaml:7:19: tools.shout.examples[0].request: String should have at least 1 character",
        "wf.yaml:7:23: tools.shout.examples[0].argumnets: unknown key 'argumnets' "
        "(did you mean 'arguments'?)",
        "wf.yaml:13:21: agents.a.tool_selection.policy: Input should be 'model', 'embedding' "
        "or 'hybrid'",
        "wf.yaml:18:38: agents.b.tool_selection.kk: unknown key 'kk' (did you mean 'k'?)",
        "wf.yaml:23:47: workflow.tool_selection.margin: Input should be greater than or equal to 0",
    ]
    for text in expected:
        assert any(text in f for f in found), (text, found)
    assert len(found) == len(expected)


def test_an_example_that_does_not_fit_its_tool_is_a_config_error(tmp_path):
    path = write(
        tmp_path,
        f"""
        backends:
          small: {{kind: local}}
        tools:
          shout:
            function: "{HELPERS}:shout"
            examples:
              - {{request: "say hi", arguments: {{txt: hi}}}}
        workflow:
          kind: planner
          question: "go"
          tools: [shout]
        """,
    )
    from plait.errors import ConfigError

    with pytest.raises(ConfigError, match="tool 'shout', example 1: the arguments do not fit"):
        load_workflow(path)
