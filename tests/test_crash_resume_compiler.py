"""Durable LLMCompiler runs killed with SIGKILL resume with the same run id.

The loop keeps one record per round in the run's ``results.sqlite`` beside the
task results: killed while planning, while a plan runs, or while a round waits
for a reviewer, the resumed process plans no recorded round again, runs no
finished task again, and gives the answer an uninterrupted run gives.
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
import asyncio, json, sys, time
from plait import ToolSpec
from plait.backends.testing import FunctionBackend
from plait.graphs import LLMCompiler, tool_runner

runs_dir, log_path, stall = sys.argv[1], sys.argv[2], sys.argv[3]

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
            if stall == "planning":
                log({"stalled": "planning"})
                time.sleep(60)  # killed here, before the plan is written
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

APPROVAL_SCRIPT = r"""
import json, sys, time
from plait import ToolSpec
from plait.backends.testing import FunctionBackend
from plait.graphs import LLMCompiler, tool_runner

runs_dir, log_path, attempt = sys.argv[1], sys.argv[2], sys.argv[3]

def log(entry):
    with open(log_path, "a") as f:
        f.write(json.dumps(entry) + "\n")

def model(request):
    text = request.messages[-1].content
    if request.agent == "planner":
        log({"planner": 1})
        tasks = [{"tool": "lookup", "args": {"key": "x"}},
                 {"tool": "send", "args": {"to": "bob", "body": "$1"}}]
        return json.dumps({"tasks": tasks})
    log({"joiner": 1})
    last = text.strip().splitlines()[-1].rsplit("-> ", 1)[1]
    return json.dumps({"action": "finish", "answer": last})

def lookup(key):
    log({"task": "lookup"})
    return f"value of {key}"

def send(to, body):
    log({"task": "send"})
    return f"sent to {to}"

def spec(name, *params):
    properties = {p: {"type": "string"} for p in params}
    return ToolSpec(name=name, description=name,
                    parameters={"type": "object", "properties": properties,
                                "required": list(params)})

compiler = LLMCompiler(FunctionBackend(model), [spec("lookup", "key"), spec("send", "to", "body")],
                       tool_runner({"lookup": lookup, "send": send}), runs_dir=runs_dir,
                       requires_approval={"send"})
# Both attempts ask for the run first: the second finds it paused, as it was left.
result = compiler.run("Send x to bob", run_id="paused")
log({"awaiting": list(result.awaiting), "attempt": attempt})
if attempt == "first":
    time.sleep(60)  # waiting for a reviewer; killed here
result = compiler.resume("paused", "approve")
print(json.dumps({"answer": result.answer, "finished": result.finished}))
"""


WORKFLOW = """
backends:
  planner: {kind: local}
tools:
  step: {function: "chain_tools:step"}
workflow:
  kind: planner
  question: Run the chain
  backend: planner
  tools: [step]
  max_replans: 0
"""

CHAIN_TOOLS = r'''
import json, time

def step(n: int, prev: int = 0) -> int:
    """One step.

    Args:
        n: the step.
        prev: the step before.
    """
    time.sleep(0.2)
    with open("log", "a") as f:
        f.write(json.dumps({"task": n}) + "\n")
    return n + prev
'''

# A planner workflow run through the SDK, as ``plait run`` does: the run's
# results.sqlite holds the round records and the task results.
WORKFLOW_SCRIPT = r"""
import json, sys
from plait.backends.testing import FunctionBackend
from plait.graphs import load_workflow

def model(request):
    text = request.messages[-1].content
    with open("log", "a") as f:
        f.write(json.dumps({request.agent: 1}) + "\n")
    if request.agent == "planner":
        tasks = [{"tool": "step", "args": {"n": 1}}]
        tasks += [{"tool": "step", "args": {"n": i, "prev": f"${i - 1}"}} for i in range(2, 6)]
        return json.dumps({"tasks": tasks})
    last = text.strip().splitlines()[-1].rsplit("-> ", 1)[1]
    return json.dumps({"action": "finish", "answer": last})

workflow = load_workflow("planner.yaml", backends={"planner": FunctionBackend(model)},
                         runs_dir="runs")
result = workflow.run(run_id="chain")
print(json.dumps({"answer": result.answer, "status": result.status}))
"""


def start(tmp_path: Path, script: str, *args: str) -> subprocess.Popen:
    path = tmp_path / "durable_compiler.py"
    path.write_text(script)
    return subprocess.Popen(
        [sys.executable, str(path), str(tmp_path / "runs"), str(tmp_path / "log"), *args],
        stdout=subprocess.PIPE,
        text=True,
    )


def logged(tmp_path: Path) -> list[dict]:
    log = tmp_path / "log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def kill_when(process: subprocess.Popen, tmp_path: Path, ready) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ready(logged(tmp_path)):
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    assert ready(logged(tmp_path)), "the run never reached the point to kill it at"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def stored_results(run_dir: Path) -> set[tuple[str, int]]:
    with sqlite3.connect(run_dir / "results.sqlite") as db:
        return {
            (run_id, int(task_id))
            for run_id, task_id in db.execute("SELECT run_id, task_id FROM results")
        }


def recorded_rounds(run_dir: Path) -> list[str]:
    with sqlite3.connect(run_dir / "results.sqlite") as db:
        rows = db.execute(
            "SELECT name FROM named_values WHERE scope='crash' AND name LIKE 'round:%'"
        )
        return sorted(name for (name,) in rows)


def test_killed_compiler_run_resumes_at_the_right_round(tmp_path):
    first = start(tmp_path, SCRIPT, "")
    # Kill in round 2, once two of its six chained steps have run.
    kill_when(first, tmp_path, lambda log: sum(1 for e in log if e.get("task", 0) >= 10) >= 2)
    run_dir = tmp_path / "runs" / "crash"
    assert not (run_dir / "checkpoints.sqlite").exists()
    assert recorded_rounds(run_dir) == ["round:1", "round:2"]
    round_2_done = {task_id for run_id, task_id in stored_results(run_dir) if run_id == "crash-2"}
    assert 1 <= len(round_2_done) < 6

    second = start(tmp_path, SCRIPT, "")
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


def test_a_run_killed_while_planning_plans_only_that_round_again(tmp_path):
    first = start(tmp_path, SCRIPT, "planning")
    kill_when(first, tmp_path, lambda log: {"stalled": "planning"} in log)
    run_dir = tmp_path / "runs" / "crash"
    # Round 1 is recorded whole; round 2 has no record yet (its plan was never written).
    assert recorded_rounds(run_dir) == ["round:1"]
    assert stored_results(run_dir) == {("crash-1", 1), ("crash-1", 2)}

    second = start(tmp_path, SCRIPT, "")
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0
    assert json.loads(out) == {"answer": "75", "finished": True, "rounds": 2}
    entries = logged(tmp_path)
    assert [e["planner"] for e in entries if "planner" in e] == [1, 2, 2]
    assert [e["joiner"] for e in entries if "joiner" in e] == [1, 2], "round 1 was joined again"
    tasks = [e["task"] for e in entries if "task" in e]
    assert sorted(tasks) == [1, 2, 10, 11, 12, 13, 14, 15], f"a finished task ran again: {tasks}"


def test_a_run_killed_while_waiting_for_approval_asks_the_same_and_finishes(tmp_path):
    first = start(tmp_path, APPROVAL_SCRIPT, "first")
    kill_when(first, tmp_path, lambda log: any("awaiting" in e for e in log))

    second = start(tmp_path, APPROVAL_SCRIPT, "second")
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0
    assert json.loads(out) == {"answer": "sent to bob", "finished": True}
    entries = logged(tmp_path)
    asked = [e["awaiting"] for e in entries if "awaiting" in e]
    assert len(asked) == 2 and asked[0] == asked[1]
    assert asked[0] == [
        {
            "type": "approval",
            "run_id": "paused",
            "round": 1,
            "tasks": [
                {"task_id": "2", "tool": "send", "args": {"to": "bob", "body": "value of x"}}
            ],
        }
    ]
    assert [e for e in entries if "planner" in e or "joiner" in e] == [
        {"planner": 1},
        {"joiner": 1},
    ]
    assert [e["task"] for e in entries if "task" in e] == ["lookup", "send"]


def test_a_planner_workflow_killed_mid_plan_resumes_with_its_finished_steps(tmp_path):
    (tmp_path / "planner.yaml").write_text(WORKFLOW)
    (tmp_path / "chain_tools.py").write_text(CHAIN_TOOLS)
    (tmp_path / "run_workflow.py").write_text(WORKFLOW_SCRIPT)

    def launch() -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
        return subprocess.Popen(
            [sys.executable, "run_workflow.py"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )

    first = launch()
    kill_when(first, tmp_path, lambda log: sum(1 for e in log if "task" in e) >= 2)
    record = json.loads((tmp_path / "runs" / "chain" / "run.json").read_text())
    assert record["status"] == "running"  # as the killed process left it
    stored = stored_results(tmp_path / "runs" / "chain")
    done_before = {n for run_id, n in stored if run_id == "chain-1"}
    assert 1 <= len(done_before) < 5 and {r for r, _ in stored} == {"chain-1"}

    second = launch()
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0
    # Chain: 1, 3, 6, 10, 15.
    assert json.loads(out) == {"answer": "15", "status": "done"}
    entries = logged(tmp_path)
    assert [e for e in entries if "planner" in e] == [{"planner": 1}], "the plan was written again"
    tasks = [e["task"] for e in entries if "task" in e]
    assert sorted(set(tasks)) == [1, 2, 3, 4, 5]
    for n in done_before:
        assert tasks.count(n) == 1, f"finished step {n} ran again: {tasks}"
