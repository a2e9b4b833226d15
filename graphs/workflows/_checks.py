"""Validation of a workflow file: schema errors and cross-section references, all at once.

Schema problems come from pydantic, mapped to positions here; references between
sections are checked by :mod:`._references`. Every problem carries the
``file:line:column`` of the offending key. :func:`read_workflow` is the one
place a file is read and validated: its :class:`ValidatedWorkflow` (the spec
with its source's positions and secrets) is what ``load_workflow`` builds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from plait._secrets import Redactor
from plait.errors import WorkflowValidationError

from ._problems import KeyPath, Position, did_you_mean
from ._references import check_references, value_at
from ._schema import WorkflowSpec
from ._source import WorkflowSource, read_source

__all__ = ["ValidatedWorkflow", "check", "read_workflow", "validate_workflow"]


@dataclass(frozen=True)
class ValidatedWorkflow:
    """A workflow file that read and validated: its spec and where each part was written.

    ``load_workflow`` builds from it without reading the file again.

    Attributes:
        path: the file, as given.
        spec: the validated file (:class:`WorkflowSpec`).
        source: the data it was read into, with the position of every key and
            value and the values taken from the environment (``${NAME}``).
    """

    path: Path
    spec: WorkflowSpec
    source: WorkflowSource

    @property
    def redactor(self) -> Redactor:
        """What hides the file's secrets wherever a run writes or prints."""
        return self.source.redactor

    def where(self, path: KeyPath) -> Position:
        """The position of a part of the file (a path of keys), for messages."""
        return self.source.where(path)


def read_workflow(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> ValidatedWorkflow:
    """Read and validate a workflow file (and its includes) without building anything.

    Args:
        path: the YAML file.
        env: the environment for ``${NAME}`` (default: ``os.environ``).

    Raises:
        WorkflowValidationError: every problem found, each with ``file:line:column``.
    """
    source = read_source(path, env)
    spec = check(source) if not source.problems or source.data else None
    if source.problems or spec is None:
        raise WorkflowValidationError(str(path), source.problems)
    return ValidatedWorkflow(Path(path), spec, source)


def validate_workflow(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> WorkflowSpec:
    """Read and validate a workflow file without building anything: its spec.

    Raises:
        WorkflowValidationError: every problem found, each with ``file:line:column``.
    """
    return read_workflow(path, env).spec


def check(source: WorkflowSource) -> WorkflowSpec | None:
    """Validate ``source.data``; append every problem to ``source.problems``.

    Returns the spec when the schema validated (references may still be wrong).
    """
    spec: WorkflowSpec | None = None
    if "workflow" not in source.data and not source.problems:
        source.add((), "the file has no 'workflow' section", "add 'workflow: {kind: steps, ...}'")
    try:
        spec = WorkflowSpec.model_validate(source.data)
    except ValidationError as e:
        _schema_problems(source, e)
    check_references(source)
    source.problems.sort(key=lambda p: (p.position.file, p.position.line, p.position.column))
    return spec


def _schema_problems(source: WorkflowSource, error: ValidationError) -> None:
    for item in error.errors(include_input=False, include_url=False):
        loc = _clean_loc(item["loc"])
        kind = item["type"]
        if kind == "missing" and loc[-1:] == ("workflow",) and "workflow" not in source.data:
            continue  # reported once above
        if kind == "extra_forbidden":
            name = str(loc[-1])
            allowed = _allowed_keys(loc[:-1], source)
            source.add(loc, f"unknown key {name!r}", did_you_mean(name, allowed), key=True)
        elif kind == "missing":
            source.add(loc[:-1], f"missing required key {loc[-1]!r}", key=True)
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            expected = item.get("ctx", {}).get("expected_tags", "")
            hint = f"kind must be one of {expected}" if expected else ""
            source.add((*loc, "kind"), "missing or unknown 'kind'", hint)
        else:  # a model validator's message, without pydantic's "Value error, " prefix
            source.add(loc, item["msg"].removeprefix("Value error, "))


def _clean_loc(loc: tuple[Any, ...]) -> KeyPath:
    """pydantic's location without the union branch tags it inserts."""
    parts = list(loc)
    # Tags sit right after the entry: backends.NAME.<kind>, tools.NAME.<tag>,
    # agents.NAME.<local|a2a>, workflow.<kind>.
    tagged = {"backends": 2, "tools": 2, "agents": 2, "workflow": 1}
    index = tagged.get(parts[0]) if parts and isinstance(parts[0], str) else None
    if index is not None and len(parts) > index:
        del parts[index]
    return tuple(p for p in parts if p != "[key]")


def _allowed_keys(loc: KeyPath, source: WorkflowSource) -> list[str]:
    from . import _schema as schema

    section = loc[0] if loc else None
    if "tool_selection" in loc:
        return sorted(schema.ToolSelectionSpec.model_fields)
    if "examples" in loc and section == "tools":
        return sorted(schema.ToolExampleSpec.model_fields)
    models: dict[Any, Any] = {
        None: schema.WorkflowSpec,
        "memory": schema.MemorySpec,
        "agents": schema.AgentSpec,
        "inputs": schema.InputSpec,
    }
    if section == "workflow":
        if len(loc) >= 3 and loc[1] == "steps":
            model: Any = schema.StepSpec
        else:
            kind = value_at(source.data, ("workflow", "kind"))
            model = {
                "planner": schema.PlannerWorkflow,
                "supervisor": schema.SupervisorWorkflow,
            }.get(kind, schema.StepsWorkflow)
            if kind == "supervisor" and len(loc) >= 2:
                if loc[1] == "worker_limits":
                    model = schema.WorkerLimitsSpec
                elif loc[1] == "plan" and len(loc) >= 3:
                    nested = len(loc) >= 4 and loc[3] == "role"
                    model = schema.TeamRoleSpec if nested else schema.TeamSubtaskSpec
    elif section == "backends":
        kind = value_at(source.data, (*loc, "kind"))
        model = {
            "local": schema.LocalBackendSpec,
            "openai": schema.OpenAIBackendSpec,
            "router": schema.RouterBackendSpec,
        }.get(kind, schema.LocalBackendSpec)
    elif section == "tools":
        entry = value_at(source.data, loc[:2])
        if isinstance(entry, dict) and "mcp" in entry:
            nested = len(loc) >= 3 and loc[2] == "mcp"
            model = schema.MCPServerSpec if nested else schema.MCPToolSpec
        elif isinstance(entry, dict) and "function" in entry:
            model = schema.FunctionToolSpec
        else:
            model = schema.BuiltinToolSpec
    elif (
        section == "agents"
        and isinstance(value_at(source.data, loc[:2]), dict)
        and ("a2a" in value_at(source.data, loc[:2]))
    ):
        nested = len(loc) >= 3 and loc[2] == "a2a"
        model = schema.A2AEndpointSpec if nested else schema.A2AAgentSpec
    elif section == "memory" and "guard" in loc:
        model = schema.GuardSpec
    else:
        model = models.get(section, schema.WorkflowSpec)
    return list(model.model_fields)
