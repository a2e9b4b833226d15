"""The REPL as a person uses it: a real pseudo-terminal, keys typed, screen read.

Most tests run ``tests/_repl_app.py`` (the public ``run_repl`` on a scripted
backend); one runs ``plait repl`` itself on the embedded model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

APP = Path(__file__).with_name("_repl_app.py")
PROMPT = "assistant>"
# pexpect does not answer prompt_toolkit's cursor-position requests.
ENV = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")


def spawn(args: list[str], cwd: Path, timeout: float = 20) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        args,
        cwd=str(cwd),
        env=ENV,
        encoding="utf-8",
        timeout=timeout,
        dimensions=(40, 120),
    )
    # Everything the terminal showed, for reading when a test fails.
    child.logfile_read = (cwd / "terminal.log").open("w")
    child.expect(PROMPT)
    return child


def app(tmp_path: Path) -> pexpect.spawn:
    return spawn([str(APP), str(tmp_path / "history")], tmp_path)


def type_keys(child: pexpect.spawn, keys: str) -> None:
    # A person's pace: prompt_toolkit completes and redraws between keystrokes.
    child.send(keys)
    time.sleep(0.3)


def enter(child: pexpect.spawn, line: str, *expected: str) -> str:
    """Type ``line`` and Enter; wait for each expected text, then the next prompt."""
    child.send(line + "\r")
    seen = ""
    for text in expected:
        child.expect(re.escape(text))
        seen += child.before + child.after
    child.expect(PROMPT)
    return seen + child.before


def quit_with(child: pexpect.spawn, keys: str) -> int:
    child.send(keys)
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_help_tools_completion_answers_and_errors(tmp_path: Path):
    child = app(tmp_path)
    enter(child, "/help", "/plan QUESTION", "Ctrl-D or /quit leaves.")
    enter(child, "/tools", "calculator  ")
    type_keys(child, "/ag")
    type_keys(child, "\t")
    enter(child, "", "* assistant  (demo; calculator)")
    enter(child, "hello there", "You said: hello there", "[assistant: ")
    enter(child, "what is 17 * 23?", '[calculator {"expression": "17 * 23"}] -> 391', "391.")
    enter(child, "/usr assistant", "error: unknown command '/usr' — did you mean '/use'?")
    enter(child, "/use nobody", "error: unknown agent 'nobody'")
    # The session is still alive and remembers the run above.
    enter(child, "/trace", "agent assistant: 2 model turn(s), 1 tool call(s)")
    enter(child, "/plan what is 6 * 7?", "1. calculator(expression=6 * 7)", "/run runs it")
    enter(child, "/run", "1. calculator -> 42", "It is 42.")
    assert quit_with(child, "/quit\r") == 0


def test_multi_line_input_with_a_trailing_backslash(tmp_path: Path):
    child = app(tmp_path)
    type_keys(child, "first line \\\r")
    enter(child, "second line", "You said: first line second line")
    type_keys(child, "one\x1b\r")  # Esc then Enter inserts a line break
    enter(child, "two", "You said: one two")
    assert quit_with(child, "\x04") == 0


def test_ctrl_c_cancels_the_run_not_the_repl(tmp_path: Path):
    child = app(tmp_path)
    child.send("answer this slowly\r")
    time.sleep(1.0)
    child.sendintr()
    child.expect(re.escape("[cancelled]"))
    child.expect(PROMPT)
    enter(child, "still here?", "You said: still here?")
    enter(child, "/stats", "runs: 1")  # the cancelled run is not counted
    # Ctrl-C at the prompt only drops the typed line.
    type_keys(child, "half a line")
    child.sendintr()
    child.expect(PROMPT)
    assert quit_with(child, "\x04") == 0


def test_history_persists_across_sessions(tmp_path: Path):
    first = app(tmp_path)
    enter(first, "remember this line", "You said: remember this line")
    assert quit_with(first, "\x04") == 0
    assert "+remember this line" in (tmp_path / "history").read_text()
    second = app(tmp_path)
    type_keys(second, "\x1b[A")  # Up arrow recalls the previous session's line
    enter(second, "", "You said: remember this line")
    assert quit_with(second, "\x04") == 0


def test_plait_repl_with_a_bad_file_exits_2(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "plait", "repl", "missing.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == "plait: error: cannot load missing.yaml: no such file\n"


@pytest.mark.local_model
def test_plait_repl_on_the_embedded_model(tmp_path: Path):
    child = spawn(["-m", "plait", "repl"], tmp_path, timeout=180)
    # Plans are schema-constrained and greedy, so the real model always writes one.
    enter(child, "/plan What is 2 + 2?", "plan: ", "calculator(expression=", "/run runs it")
    # Ctrl-C stops the real engine mid-answer and the session goes on.
    child.send("Write a very long story about a cat.\r")
    time.sleep(3.0)
    child.sendintr()
    child.expect(re.escape("[cancelled]"))
    child.expect(PROMPT)
    # A 135M model may answer or trip over a tool call: either way one line, then the prompt.
    child.send("Say hello.\r")
    child.expect([re.escape("[assistant: "), "error: "])
    child.expect(PROMPT)
    enter(child, "/stats", "local:default: ", "KV reuse")
    enter(child, "/backend", "LocalBackend, model ")
    assert quit_with(child, "/quit\r") == 0
    assert (tmp_path / ".plait" / "repl_history").is_file()
