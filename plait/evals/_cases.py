"""Function-calling cases in the Berkeley Function Calling Leaderboard's format (BFCL v4).

A category is two JSON-lines files in one folder: ``BFCL_v4_<category>.json``
(each line: ``id``, ``question`` as turns of chat messages, ``function``: the
offered functions with BFCL's parameter schemas) and
``BFCL_v4_<category>_answers.json`` (each line: ``id`` and ``ground_truth``, one
``{function: {parameter: [allowed values]}}`` per expected call).

BFCL's schemas use a few type names of its own (``dict``, ``float``,
``tuple``, ``any``); :func:`json_schema_of_parameters` turns them into JSON Schema.
Its function names may contain dots, which not every server accepts in a tool
name, so each case maps them to safe names and back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plait.errors import ConfigError
from plait.tools import Tool, Toolset, schema_tool

__all__ = ["FunctionCase", "json_schema_of_parameters", "load_case_file", "load_cases"]

_TYPES = {"dict": "object", "float": "number", "tuple": "array"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def json_schema_of_parameters(schema: Any) -> Any:
    """A BFCL parameter schema as JSON Schema (``dict`` -> object, ``float`` -> number, ...)."""
    if isinstance(schema, list):
        return [json_schema_of_parameters(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "optional":  # BFCL's marker; "required" says the same
            continue
        if key == "type":
            if value == "any":
                continue
            out[key] = _TYPES.get(value, value) if isinstance(value, str) else value
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {k: json_schema_of_parameters(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf"):
            out[key] = json_schema_of_parameters(value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class FunctionCase:
    """One function-calling case.

    Attributes:
        id: the case id (``multiple_12``).
        category: the category it came from.
        messages: the chat messages of its (single) turn, as ``{role, content}``.
        functions: the offered functions, BFCL schemas as given.
        expected: the ground truth, one ``{function: {parameter: [values]}}`` per call.
    """

    id: str
    category: str
    messages: tuple[Mapping[str, str], ...]
    functions: tuple[Mapping[str, Any], ...]
    expected: tuple[Mapping[str, Mapping[str, Any]], ...]
    _names: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def request(self) -> str:
        """The user's request (the user messages of the turn, joined)."""
        return "\n".join(m["content"] for m in self.messages if m.get("role") == "user")

    @property
    def system(self) -> str:
        """The case's own system prompt, if it has one."""
        return "\n".join(m["content"] for m in self.messages if m.get("role") == "system")

    def tool_names(self) -> dict[str, str]:
        """Safe tool name -> function name, for every offered function."""
        if not self._names:
            for function in self.functions:
                base = _UNSAFE.sub("_", function["name"])[:60] or "function"
                name, n = base, 2
                while name in self._names:
                    name, n = f"{base}_{n}", n + 1
                self._names[name] = function["name"]
        return self._names

    def toolset(self) -> Toolset:
        """The offered functions as stub tools (each returns its arguments)."""
        by_function = {f: safe for safe, f in self.tool_names().items()}
        tools: list[Tool] = []
        for function in self.functions:
            parameters = json_schema_of_parameters(function.get("parameters") or {})
            tools.append(
                schema_tool(
                    by_function[function["name"]],
                    {"type": "object", **parameters},
                    description=str(function.get("description", "")),
                )
            )
        return Toolset(tools)

    def parameters(self) -> dict[str, Mapping[str, Any]]:
        """Function name -> its parameters as JSON Schema (for grading)."""
        return {
            f["name"]: json_schema_of_parameters(f.get("parameters") or {}) for f in self.functions
        }


def _read_lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read function-calling cases from {path}: {e.strerror}") from e
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{number}: not a JSON line ({e.msg})") from e
    return rows


def load_cases(
    directory: str | Path, category: str, *, limit: int | None = None
) -> list[FunctionCase]:
    """The cases of one category (in file order; the first ``limit`` when given).

    Raises:
        ConfigError: a file is missing or malformed, or a case has no answer.
    """
    folder = Path(directory)
    questions = _read_lines(folder / f"BFCL_v4_{category}.json")
    answers = {
        row["id"]: row["ground_truth"]
        for row in _read_lines(folder / f"BFCL_v4_{category}_answers.json")
    }
    cases = []
    for row in questions[:limit] if limit is not None else questions:
        where = f"{folder / f'BFCL_v4_{category}.json'}: case {row.get('id')!r}"
        if row.get("id") not in answers:
            raise ConfigError(f"{where} has no ground truth in the answers file")
        cases.append(
            _single_turn(
                where,
                row["id"],
                category,
                row.get("question") or [],
                row.get("function") or (),
                answers[row["id"]],
            )
        )
    return cases


def load_case_file(path: str | Path, *, limit: int | None = None) -> list[FunctionCase]:
    """The cases of one JSON-lines file holding questions and answers together.

    Each line is a BFCL case with its ``category`` and ``ground_truth`` beside
    the question (the form of ``benchmarks/data/own_tools.jsonl``); ``limit``
    keeps the first N cases of each category, in file order.

    Raises:
        ConfigError: the file is missing or malformed, or a case lacks a field.
    """
    file = Path(path)
    cases: list[FunctionCase] = []
    seen: dict[str, int] = {}
    for row in _read_lines(file):
        where = f"{file}: case {row.get('id')!r}"
        missing = [
            k for k in ("id", "category", "question", "function", "ground_truth") if k not in row
        ]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)}")
        category = str(row["category"])
        seen[category] = seen.get(category, 0) + 1
        if limit is not None and seen[category] > limit:
            continue
        cases.append(
            _single_turn(
                where, row["id"], category, row["question"], row["function"], row["ground_truth"]
            )
        )
    return cases


def _single_turn(
    where: str,
    case_id: str,
    category: str,
    turns: Sequence[Sequence[Mapping[str, str]]],
    functions: Sequence[Any],
    expected: Sequence[Any],
) -> FunctionCase:
    """One case from its fields; ``where`` names it in the error for a multi-turn case."""
    if len(turns) != 1:
        raise ConfigError(f"{where}: {len(turns)} turns; only single-turn cases are supported")
    return FunctionCase(
        id=case_id,
        category=category,
        messages=tuple(turns[0]),
        functions=tuple(functions),
        expected=tuple(expected),
    )
