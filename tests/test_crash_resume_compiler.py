"""A durable LLMCompiler run killed in its second round resumes with the same run id.

The outer loop is checkpointed (LangGraph's SQLite saver) and task results are
stored beside it: the resumed process plans no round again, runs no finished
task again, and finishes the answer.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = r"""
import asyncio, json, sys
from plait import ToolSpec
from plait.backends.testing import FunctionBackend
from plait.graphs import LLMCompiler, tool_runner

runs_dir, log_path = sys.argv[1], sys.argv[2]

def log(entry):
    with open(log_path, "a") as f:
        f.write(json.dumps(entry) + "\n")

def model(request):
    text = request.messages[-1].content
    if request.agent == "planner":
        round_no = 2 if "Joiner:" in text else 1
        log({"planner": round_no})
        if round_no == 1:
            tasks = [{"tool": "step", "args": {"n": 1}}, {"tool": "step", "args": {"n": 2}}]
        else:
            tasks = [{"tool": "step", "args": {"n": 10}}]
            tasks += [{"tool": "step", "args": {"n": 10 + i, "prev": f"${i}"}} for i in range(1, 6)]
        return json.dumps({"tasks": tasks})
    round_no = 2 if '"n": 10' in text else 1
    log({"joiner": round_no})
    if round_no == 1:
        return json.dumps({"action": "replan", "answer": "need the long chain"})
    last = text.strip().splitlines()[-1].rsplit("-> ", 1)[1]
    return json.dumps({"action": "finish", "answer": last})

async def step(n, prev=0):
    if n >= 10:
        await asyncio.sleep(0.2)
    log({"task": n})
    return n + prev

STEP = ToolSpec(
    name="step",
    description="One step.",
    parameters={"type": "object", "properties": {"n": {"type": "integer"}, "prev": {}},
                "required": ["n"]},
)
compiler = LLMCompiler(FunctionBackend(model), [STEP], tool_runner({"step": step}),
                       runs_dir=runs_dir, max_tasks=8)
result = compiler.run("Run the chain", run_id="crash")
print(json.dumps({"answer": result.answer, "finished": result.finished,
                  "rounds": len(result.rounds)}))
"""


def start(tmp_path: Path) -> subprocess.Popen:
    script = tmp_path / "durable_compiler.py"
    script.write_text(SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "runs"), str(tmp_path / "log")],
        stdout=subprocess.PIPE,
        text=True,
    )


def logged(tmp_path: Path) -> list[dict]:
    log = tmp_path / "log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_killed_compiler_run_resumes_at_the_right_round(tmp_path):
    first = start(tmp_path)
    deadline = time.monotonic() + 60
    # Kill in round 2, once two of its six chained steps have run.
    while time.monotonic() < deadline:
        if sum(1 for e in logged(tmp_path) if e.get("task", 0) >= 10) >= 2:
            break
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    run_dir = tmp_path / "runs" / "crash"
    assert (run_dir / "checkpoints.sqlite").exists()
    with sqlite3.connect(run_dir / "results.sqlite") as db:
        stored = {
            (run_id, int(task_id))
            for run_id, task_id in db.execute("SELECT run_id, task_id FROM results")
        }
    round_2_done = {task_id for run_id, task_id in stored if run_id == "crash-2"}
    assert 1 <= len(round_2_done) < 6

    second = start(tmp_path)
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0
    # Chain: 10, 21, 33, 46, 60, 75.
    assert json.loads(out) == {"answer": "75", "finished": True, "rounds": 2}

    entries = logged(tmp_path)
    assert [e["planner"] for e in entries if "planner" in e] == [1, 2], "a round was planned again"
    assert [e["joiner"] for e in entries if "joiner" in e] == [1, 2]
    tasks = [e["task"] for e in entries if "task" in e]
    assert tasks.count(1) == 1 and tasks.count(2) == 1, "round 1 ran again"
    for task_id in round_2_done:
        n = 9 + task_id
        assert tasks.count(n) == 1, f"finished step {n} ran again: {tasks}"
    assert sorted(set(tasks)) == [1, 2, 10, 11, 12, 13, 14, 15]
