"""A workflow file is read and validated once: load_workflow builds what read_workflow returned."""

from __future__ import annotations

import pytest

from plait.agents import MemoryBinding
from plait.backends.testing import ScriptedBackend
from plait.errors import ConfigError
from plait.graphs import ValidatedWorkflow, load_workflow, read_workflow

FILE = """
backends:
  model: {kind: openai, model: m, base_url: "http://127.0.0.1:9/v1", api_key_env: null}
memory: {path: notes, recall_k: 2}
agents:
  writer: {instructions: "Write.", backend: model, memory: true}
inputs:
  topic: {default: "${TOPIC}"}
workflow:
  kind: steps
  steps:
    - {id: draft, agent: writer, input: "Write about ${inputs.topic}."}
"""


def test_a_validated_workflow_is_built_without_reading_the_file_again(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text(FILE)
    validated = read_workflow(path, env={"TOPIC": "otters-and-rivers"})
    assert isinstance(validated, ValidatedWorkflow)
    path.unlink()  # building needs the validated spec, not the file
    workflow = load_workflow(
        validated, backends={"model": ScriptedBackend(["ok"])}, runs_dir=tmp_path / "runs"
    )
    assert workflow.spec is validated.spec
    assert workflow.redactor.text("about otters-and-rivers") == "about ***"
    assert str(validated.where(("agents", "writer"))).endswith("flow.yaml:6:11")


def test_env_applies_when_reading_not_to_a_workflow_read_already(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text(FILE)
    validated = read_workflow(path, env={"TOPIC": "x"})
    with pytest.raises(ConfigError, match="read already"):
        load_workflow(validated, env={"TOPIC": "y"})


def test_a_workflow_agents_memory_keeps_trust_levels(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text(FILE)
    workflow = load_workflow(
        path, env={"TOPIC": "x"}, backends={"model": ScriptedBackend([])}, runs_dir=tmp_path
    )
    binding = workflow.agents["writer"].memory
    assert isinstance(binding, MemoryBinding) and binding.k == 2
    assert binding.memory is workflow.memory
