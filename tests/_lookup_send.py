"""The planner tests' two tools (``lookup``, ``send``) and a compiler over them."""

from __future__ import annotations

import json
from typing import Any

from plait import ToolSpec
from plait.backends.testing import ScriptedBackend, Step
from plait.graphs import LLMCompiler, tool_runner

LOOKUP = ToolSpec(
    name="lookup",
    description="Look a key up.",
    parameters={"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
)
SEND = ToolSpec(
    name="send",
    description="Send a message.",
    parameters={
        "type": "object",
        "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
        "required": ["to", "body"],
    },
)


def plan_json(*tasks: tuple[str, dict[str, Any]]) -> str:
    return json.dumps({"tasks": [{"tool": t, "args": a} for t, a in tasks]})


def lookup_send_compiler(
    script: list[Step | str], calls: list, **options: Any
) -> tuple[ScriptedBackend, LLMCompiler]:
    """A compiler whose planner follows ``script``; each tool call is appended to ``calls``."""

    async def lookup(key: str) -> str:
        calls.append(("lookup", key))
        return f"value of {key}"

    async def send(to: str, body: str) -> str:
        calls.append(("send", to, body))
        return f"sent to {to}"

    model = ScriptedBackend(script)
    runner = tool_runner({"lookup": lookup, "send": send})
    return model, LLMCompiler(model, [LOOKUP, SEND], runner, **options)
