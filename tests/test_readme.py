"""The README's Quick start commands are exactly what CI runs."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_has_exactly_two_quick_start_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "plait run examples/" in commands[0] and "pytest" in commands[1]


def test_ci_runs_both_readme_commands_verbatim():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in quick_start_commands():
        assert command in ci_lines


@pytest.mark.local_model
def test_readme_python_examples_run(capsys):
    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", readme, re.S):
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "{'sentiment': 'positive'}" in out and "get_weather" in out
    assert "result=84.0" in out  # the Agents example
    # The plan example ran the calculator: its first task's result is a number. The
    # small model's plan for "17 * 23" differs between runs (sometimes two tasks,
    # one per operand), so the exact value is not asserted.
    assert re.search(r"\{'1': '-?[0-9][0-9.]*'", out)
    assert "rejected by the reviewer: no" in out  # the approval example paused and resumed
    assert "[] ('fetch result (step 1)', 'send_email call')" in out  # the policy refused
    assert "True 1\n1 1\n" in out  # the model-call cache answered the repeat
    assert "stop_reason=" in out and "team prefix unpinned" in out  # the team example
    assert "The Kestrel flies 8 minutes" in out  # the MCP example called the drone server
