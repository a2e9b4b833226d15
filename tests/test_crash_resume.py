"""A durable run killed with SIGKILL mid-run resumes without re-running finished tasks."""

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
from plait.graphs import EagerExecutor, Plan, SQLiteResultStore, Task

store_path, log_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]

async def tool(task, args):
    await asyncio.sleep(0.15)
    value = sum(v for v in args.values() if isinstance(v, int)) + 1
    with open(log_path, "a") as log:          # the side effect
        log.write(json.dumps({"task": task.id, "value": value}) + "\n")
    return value

# Two chains of four steps plus a final join of both chains.
tasks = []
for chain in "ab":
    for step in range(4):
        args = {"prev": f"${chain}{step - 1}"} if step else {}
        tasks.append(Task(id=f"{chain}{step}", tool="step", args=args))
tasks.append(Task(id="final", tool="step", args={"a": "$a3", "b": "$b3"}))

async def main():
    executor = EagerExecutor(tool, store=SQLiteResultStore(store_path))
    if mode == "start":
        result = await executor.run(Plan(tasks=tuple(tasks)), run_id="crash-test")
    else:
        result = await executor.resume("crash-test")
    print(json.dumps(result.results))

asyncio.run(main())
"""


def run_script(tmp_path: Path, mode: str) -> subprocess.Popen:
    script = tmp_path / "durable_run.py"
    script.write_text(SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "runs.sqlite"), str(tmp_path / "log"), mode],
        stdout=subprocess.PIPE,
        text=True,
    )


def logged(tmp_path: Path) -> list[dict]:
    log = tmp_path / "log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_killed_run_resumes_without_repeating_finished_tasks(tmp_path):
    first = run_script(tmp_path, "start")
    deadline = time.monotonic() + 60
    # Kill once some, but not all, tasks have finished.
    while len(logged(tmp_path)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    # A task is finished once its result is stored. One that had logged its side
    # effect but was killed before storing may legitimately run again (that gap is
    # what idempotency keys are for), so the check is against the store.
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        stored = {row[0] for row in db.execute("SELECT task_id FROM results")}
    assert 2 <= len(stored) < 9

    second = run_script(tmp_path, "resume")
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0
    results = json.loads(out)

    runs = [entry["task"] for entry in logged(tmp_path)]
    for task_id in stored:
        assert runs.count(task_id) == 1, f"finished task {task_id} ran again: {runs}"
    assert set(runs) == set(results) and len(results) == 9
    # Each chain counts 1..4; final = a3 + b3 + 1.
    assert results["a3"] == 4 and results["b3"] == 4 and results["final"] == 9
