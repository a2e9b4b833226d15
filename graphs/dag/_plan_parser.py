"""Parsing LLMCompiler-style numbered plans, while they stream.

The format::

    Thought: I need both temperatures first.
    1. get_weather(city="Paris")
    2. get_weather("Rome")
    3. compare(a=$1, b=$2)
    4. join()

Each numbered line becomes a :class:`Task` as soon as the line is complete, so
the executor can start it while the planner is still writing the rest.
``join()`` (or ``<END_OF_PLAN>``) ends the plan.
"""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from typing import Any

from plait.errors import PlanError

from ._plan import Task

__all__ = ["StreamingPlanParser", "parse_plan_stream"]

_LINE = re.compile(r"^\s*(\d+)\s*[.)]\s*([A-Za-z_][\w.\-]*)\s*\((.*)\)\s*$")
_END_MARKERS = ("<END_OF_PLAN>",)


class StreamingPlanParser:
    """Turns streamed plan text into tasks, one complete line at a time.

    Args:
        parameters: parameter names per tool, to name positional arguments.
        join_tool: the name that ends the plan.
    """

    def __init__(
        self, parameters: Mapping[str, Sequence[str]] | None = None, *, join_tool: str = "join"
    ) -> None:
        self._parameters = dict(parameters or {})
        self._join_tool = join_tool
        self._buffer = ""
        self.finished = False

    def feed(self, text: str) -> list[Task]:
        """Add streamed text; return the tasks whose lines are now complete."""
        if self.finished:
            return []
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        return self._parse_lines(lines)

    def close(self) -> list[Task]:
        """The plan text ended: parse what is left."""
        rest, self._buffer = self._buffer, ""
        return [] if self.finished else self._parse_lines([rest])

    def _parse_lines(self, lines: list[str]) -> list[Task]:
        tasks = []
        for line in lines:
            if self.finished:
                break
            if any(marker in line for marker in _END_MARKERS):
                self.finished = True
                break
            match = _LINE.match(line)
            if not match:
                continue  # thoughts and prose between tasks
            task_id, tool, arg_text = match.groups()
            if tool == self._join_tool:
                self.finished = True
                break
            tasks.append(Task(id=task_id, tool=tool, args=self._arguments(task_id, tool, arg_text)))
        return tasks

    def _arguments(self, task_id: str, tool: str, text: str) -> dict[str, Any]:
        try:
            call = ast.parse(f"f({_quote_references(text)})", mode="eval").body
            assert isinstance(call, ast.Call)
            positional = [ast.literal_eval(a) for a in call.args]
            named = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
        except (SyntaxError, ValueError, AssertionError) as e:
            raise PlanError(f"cannot parse the arguments of {tool}({text})", task_id=task_id) from e
        if positional:
            names = self._parameters.get(tool)
            if names is None or len(positional) > len(names):
                raise PlanError(
                    f"{tool} got {len(positional)} positional argument(s) but its parameter "
                    "names are unknown or fewer; use name=value",
                    task_id=task_id,
                )
            named = {**dict(zip(names, positional, strict=False)), **named}
        return named


def _quote_references(text: str) -> str:
    """Turn bare ``$1`` / ``${1}`` outside string literals into strings."""
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "$":
            match = re.match(r"\$(\{[^{}]+\}|\w+)", text[i:])
            if match:
                out.append(repr(match.group(0)))
                i += len(match.group(0))
                continue
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


async def parse_plan_stream(
    chunks: AsyncIterable[str], parameters: Mapping[str, Sequence[str]] | None = None
) -> AsyncIterator[Task]:
    """Yield tasks from streamed plan text as soon as each line is complete."""
    parser = StreamingPlanParser(parameters)
    async for chunk in chunks:
        for task in parser.feed(chunk):
            yield task
        if parser.finished:
            return
    for task in parser.close():
        yield task
