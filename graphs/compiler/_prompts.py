"""What the planner and the joiner are asked, and how their answers are read.

Prompts are package data (``prompts/*.txt``); the JSON plan schema is built from
the tools, so a plan always parses, and any argument may be a ``$N`` reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from plait.chat import ChatRequest, ToolSpec
from plait.completions import Completion
from plait.errors import ModelOutputError, PlanError
from plait.messages import SystemMessage, UserMessage
from plait.prompts import load_prompt
from plait.provenance import describe, untrusted

from ..dag import Plan, RunResult, Task, substitute

__all__ = [
    "decision",
    "joiner_request",
    "model_plan",
    "observations",
    "parameter_names",
    "plan_schema",
    "planner_request",
    "without_repeats",
]

_REFERENCE_SCHEMA = {"type": "string", "pattern": "^[$][1-9][0-9]?$"}
_ANSWER_MAX_CHARS = 400
_JOIN_SCHEMA = {
    "type": "object",
    # The answer comes first: small models otherwise echo the action word into it.
    # maxLength bounds the string in the grammar, so a rambling model still closes it.
    "properties": {
        "answer": {"type": "string", "maxLength": _ANSWER_MAX_CHARS},
        "action": {"enum": ["finish", "replan"]},
    },
    "required": ["action", "answer"],
    "additionalProperties": False,
}


def _prompt(name: str) -> str:
    return load_prompt(__package__ or __name__, name)


def planner_request(
    tools: Mapping[str, ToolSpec],
    question: str,
    history: Sequence[tuple[Plan, RunResult, str]],
    *,
    plan_format: Literal["json", "text"],
    max_tasks: int,
    quarantine: bool = False,
) -> ChatRequest:
    """The planner's request; ``history`` holds each earlier round's plan, run and answer.

    With ``quarantine``, untrusted results are withheld (see :func:`observations`).
    """
    listing = "\n".join(
        f"- {t.name}({', '.join(parameter_names(t))}): {t.description}" for t in tools.values()
    )
    system = _prompt(f"planner_{plan_format}").format(tools=listing).strip()
    user = question
    if history:
        rounds = "\n\n".join(
            observations(plan, run, quarantine=quarantine) + f"\nJoiner: {answer}"
            for plan, run, answer in history
        )
        user = f"{question}\n\n" + _prompt("replan_context").format(history=rounds)
    fields: dict[str, Any] = {"temperature": 0.0, "max_tokens": 400, "agent": "planner"}
    if plan_format == "json":
        fields["response_schema"] = plan_schema(tools, max_tasks)
    return ChatRequest(
        messages=(SystemMessage(content=system), UserMessage(content=user)), **fields
    )


def plan_schema(tools: Mapping[str, ToolSpec], max_tasks: int) -> dict[str, Any]:
    """The JSON Schema of a plan over these tools (one ``anyOf`` branch per tool)."""
    items = [
        {
            "type": "object",
            "properties": {"tool": {"const": t.name}, "args": _args_with_references(t)},
            "required": ["tool", "args"],
            "additionalProperties": False,
        }
        for t in tools.values()
    ]
    return {
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "items": items[0] if len(items) == 1 else {"anyOf": items},
                "minItems": 1,
                "maxItems": max_tasks,
            }
        },
        "required": ["tasks"],
        "additionalProperties": False,
    }


def joiner_request(
    question: str, plan: Plan, run: RunResult, *, quarantine: bool = False
) -> ChatRequest:
    """The joiner's request: the question and every task's result.

    With ``quarantine``, untrusted results are withheld (see :func:`observations`).
    """
    user = (
        f"Question: {question}\n\nTool results:\n{observations(plan, run, quarantine=quarantine)}"
    )
    return ChatRequest(
        messages=(SystemMessage(content=_prompt("joiner")), UserMessage(content=user)),
        response_schema=_JOIN_SCHEMA,
        temperature=0.0,
        # At least one token per answer character plus the JSON around it, so
        # the grammar can always close the object before the token limit.
        max_tokens=_ANSWER_MAX_CHARS + 48,
        agent="joiner",
    )


def decision(join: Completion) -> tuple[str, str]:
    """The joiner's (action, answer), or ``ModelOutputError`` with its raw text."""
    try:
        decision = join.parse_json()
        return decision["action"], str(decision["answer"])
    except (ModelOutputError, KeyError, TypeError) as e:
        raise ModelOutputError("the joiner's reply is not a valid decision", raw=join.text) from e


@contextmanager
def model_plan(raw: Callable[[], str]) -> Iterator[None]:
    """Read a plan the model wrote: a ``PlanError`` in the block is bad model output.

    ``PlanError`` is kept for plans a caller gives (``LLMCompiler.aexecute``,
    ``run_static``); a plan the planner wrote that does not parse or validate is
    a run-time failure, raised as :class:`ModelOutputError` with the model's
    text (``raw()``, read when it happens) and the ``PlanError`` as its cause.
    """
    try:
        yield
    except PlanError as e:
        raise ModelOutputError(f"the planner's plan is invalid ({e})", raw=raw()) from e


def without_repeats(tasks: list[Task]) -> tuple[Task, ...]:
    """Drop tasks that repeat an earlier one verbatim; references follow the kept one.

    Small models often write the same call several times; running it again adds
    nothing.
    """
    kept: list[Task] = []
    first_of: dict[str, str] = {}
    alias: dict[str, str] = {}
    for task in tasks:
        args = (
            substitute(task.args, {old: f"${new}" for old, new in alias.items()})
            if alias
            else task.args
        )
        key = json.dumps([task.tool, args], sort_keys=True)
        if key in first_of:
            alias[task.id] = first_of[key]
            continue
        first_of[key] = task.id
        kept.append(task.model_copy(update={"args": args}))
    return tuple(kept)


def parameter_names(tool: ToolSpec) -> list[str]:
    """The tool's argument names, in declaration order."""
    return list(tool.parameters.get("properties", {}))


def _args_with_references(tool: ToolSpec) -> dict[str, Any]:
    """The tool's argument schema, where any argument may also be a ``$N`` reference."""
    properties = {
        name: {"anyOf": [schema, _REFERENCE_SCHEMA]}
        for name, schema in tool.parameters.get("properties", {}).items()
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if tool.parameters.get("required"):
        schema["required"] = list(tool.parameters["required"])
    return schema


def observations(plan: Plan, run: RunResult, *, quarantine: bool = False) -> str:
    """One line per task: its call and its result, error or status.

    With ``quarantine`` (plan-then-execute), a task whose result derives from an
    untrusted source is shown without its text: the model deciding what to do
    next never reads it, and may place it in the answer as ``$<id>``.
    """
    lines = []
    for task in plan.tasks:
        outcome = run.outcomes.get(task.id)
        call = f"{task.id}. {task.tool}({json.dumps(task.args, ensure_ascii=False)})"
        if outcome is None:
            lines.append(f"{call} -> not run")
        elif quarantine and untrusted(outcome.sources):
            origin = describe(untrusted(outcome.sources))
            status = "result" if outcome.status == "done" else f"{outcome.status} task's error"
            lines.append(
                f"{call} -> [{status} from {origin} withheld (untrusted); "
                f"write ${task.id} in the answer to include it]"
            )
        elif outcome.status == "done":
            lines.append(f"{call} -> {_short(outcome.result)}")
        else:
            lines.append(f"{call} -> {outcome.status.upper()}: {outcome.error}")
    return "\n".join(lines)


def _short(value: Any, limit: int = 500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + " ...[truncated]"
