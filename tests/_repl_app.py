"""A REPL on a scripted backend, for the pseudo-terminal tests (run as a script).

Usage: ``python tests/_repl_app.py HISTORY_FILE``. The backend answers like a
tiny model: questions "what is EXPR?" go through the calculator tool, a task
containing "slowly" takes a minute (to be cancelled with Ctrl-C), the planner
and joiner write JSON, anything else is echoed.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from plait.backends.testing import FunctionBackend, Reply
from plait.chat import ChatRequest
from plait.cli.repl import ReplSession, default_session, run_repl
from plait.messages import ToolCall


async def answer(request: ChatRequest) -> Reply:
    last = request.messages[-1]
    text = getattr(last, "content", None) or ""
    if request.agent == "planner":
        expression = re.sub(r"[^0-9+*/() .-]", "", text).strip()
        return json.dumps({"tasks": [{"tool": "calculator", "args": {"expression": expression}}]})
    if request.agent == "joiner":
        result = re.findall(r"-> (.*)", text)
        return json.dumps({"answer": f"It is {result[0]}.", "action": "finish"})
    if last.role == "tool":
        return f"The result is {text}."
    if "slowly" in text:
        await asyncio.sleep(60)
        return "finally done"
    asked = re.search(r"what is ([0-9+*/() .-]+)\?", text)
    if asked:
        return ToolCall(name="calculator", arguments={"expression": asked.group(1).strip()})
    return "You said: " + " ".join(text.split())


def main() -> int:
    session: ReplSession = default_session(FunctionBackend(answer, name="demo"))
    return run_repl(session, history=Path(sys.argv[1]))


if __name__ == "__main__":
    raise SystemExit(main())
