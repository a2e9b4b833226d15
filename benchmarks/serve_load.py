"""Load and crash benchmark for ``plait serve``; prints one JSON object.

A tool-only steps workflow (four tasks of 50-150 ms: one, two in parallel, one)
is served by a real ``plait serve`` subprocess on a loopback port.

- Wave 1: ``--runs`` runs from ``--clients`` concurrent clients, each posting a
  run and following its event stream to the end: ``p50_s``/``p95_s`` (post to
  the stream's last event) and ``throughput_runs_per_s``.
- The same workload in-process (``Workflow.arun`` on the ``EagerExecutor``, as
  many at once as the server runs): ``serve_overhead_ratio`` is the wave's wall
  time over the in-process wall time.
- Wave 2: the same number of runs again; half-way through accepting them the
  server is killed with SIGKILL, started again, and every run not done is
  resumed (runs still queued are queued again by the new server itself).
  ``lost``: runs accepted (their id was returned) that never finished;
  ``duplicated_tasks``: finished tasks (a result stored) that ran again, from
  the tools' call log and the result stores as the kill left them;
  ``rerun_cut_off_tasks``: calls that had ended but whose result was not yet
  stored when the kill came, run again on resume (not finished, so allowed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import httpx

TOOLS = '''
import asyncio


async def work(tag: str, step: str, ms: int) -> str:
    """Sleep, then log the finished call.

    Args:
        tag: the run's tag.
        step: the step.
        ms: how long.
    """
    await asyncio.sleep(ms / 1000)
    with open("calls.log", "a") as log:
        log.write(f"{tag} {step}\\n")
    return f"{tag}:{step}"
'''

WORKFLOW = """
tools:
  work: {function: "load_tools:work"}
inputs:
  tag: {type: string}
workflow:
  kind: steps
  steps:
    - {id: fetch, tool: work, args: {tag: "${inputs.tag}", step: fetch, ms: 50}}
    - {id: left, tool: work, args: {tag: "${inputs.tag}", step: "left ${fetch}", ms: 150}}
    - {id: right, tool: work, args: {tag: "${inputs.tag}", step: "right ${fetch}", ms: 100}}
    - {id: join, tool: work, args: {tag: "${inputs.tag}", step: "join ${left} ${right}", ms: 50}}
"""


RESTART = "--- restart"


def _stored_tasks(folder: Path, run_ids: list[str]) -> set[tuple[str, str]]:
    """(tag, step) of every task result on disk: what a resume must not run again."""
    stored = set()
    for run_id in run_ids:
        run_dir = folder / ".plait" / "runs" / run_id
        tag = json.loads((run_dir / "run.json").read_text())["inputs"]["tag"]
        if (run_dir / "results.sqlite").exists():
            with sqlite3.connect(run_dir / "results.sqlite") as db:
                try:
                    rows = db.execute("SELECT task_id FROM results WHERE run_id=?", (run_id,))
                except sqlite3.OperationalError:
                    continue  # killed while the store was being created: nothing stored
                stored.update((tag, task_id) for (task_id,) in rows)
    return stored


def _duplicates(log: list[str], stored: set[tuple[str, str]]) -> tuple[int, int]:
    """Finished tasks run again (twice in one server, or again after the restart),
    and tasks cut off mid-call by the kill that ran again (allowed)."""
    before = log[: log.index(RESTART)]
    after = log[log.index(RESTART) + 1 :]

    def key(line: str) -> tuple[str, str]:
        tag, step = line.split(" ", 1)
        return tag, step.split()[0]

    counts = Counter(key(line) for line in before) + Counter(key(line) for line in after)
    twice_before = sum(1 for n in Counter(key(line) for line in before).values() if n > 1)
    again = [key(line) for line in after]
    rerun_stored = sum(1 for k in again if k in stored)
    cut_off = sum(1 for k in again if k not in stored and counts[k] > 1)
    return twice_before + rerun_stored, cut_off


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(folder: Path, port: int, max_runs: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-m", "plait", "serve", "load.yaml", "--port", str(port),
         "--max-runs", str(max_runs)],
        cwd=folder, env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/workflows", timeout=2)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("plait serve did not start")


async def _follow(client: httpx.AsyncClient, run_id: str) -> str:
    """Read a run's event stream to its end; the last run status seen."""
    status = ""
    async with client.stream("GET", f"/runs/{run_id}/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event["type"] == "run":
                    status = event["status"]
    return status


async def _wave(url: str, tags: list[str], clients: int) -> tuple[list[float], float]:
    """Every tag's run through ``clients`` concurrent clients: latencies, wall time."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for tag in tags:
        queue.put_nowait(tag)
    latencies: list[float] = []

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            while not queue.empty():
                tag = queue.get_nowait()
                began = time.perf_counter()
                posted = await client.post(
                    "/runs", json={"workflow": "load", "inputs": {"tag": tag}}
                )
                posted.raise_for_status()
                status = await _follow(client, posted.json()["run_id"])
                if status == "done":
                    latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return latencies, time.perf_counter() - began


async def _crash_wave(
    folder: Path, port: int, tags: list[str], clients: int, max_runs: int,
    process: subprocess.Popen[bytes],
) -> tuple[int, int, set[tuple[str, str]], subprocess.Popen[bytes]]:  # fmt: skip
    """Accept runs, SIGKILL the server half-way, restart, resume.

    Returns: runs accepted, runs lost, (tag, step) stored when it was killed, the server.
    """
    url = f"http://127.0.0.1:{port}"
    accepted: list[str] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for tag in tags:
        queue.put_nowait(tag)
    killed = asyncio.Event()

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            while not queue.empty() and not killed.is_set():
                tag = queue.get_nowait()
                try:
                    posted = await client.post(
                        "/runs", json={"workflow": "load", "inputs": {"tag": tag}}
                    )
                except httpx.TransportError:
                    return  # the server is gone; this run was never accepted
                accepted.append(posted.json()["run_id"])
                if len(accepted) >= len(tags) // 2 and not killed.is_set():
                    killed.set()
                    process.send_signal(signal.SIGKILL)
                    process.wait()

    await asyncio.gather(*(client_loop() for _ in range(clients)))
    stored = _stored_tasks(folder, accepted)
    with (folder / "calls.log").open("a") as log:
        log.write(RESTART + "\n")
    process = _start(folder, port, max_runs)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for run_id in accepted:
            record = (await client.get(f"/runs/{run_id}")).json()
            if record["resumable"] and record["status"] != "queued":
                (await client.post(f"/runs/{run_id}/resume")).raise_for_status()
        statuses = await asyncio.gather(*(_follow(client, run_id) for run_id in accepted))
        final = [(await client.get(f"/runs/{r}")).json()["status"] for r in accepted]
    del statuses
    return len(accepted), sum(1 for s in final if s != "done"), stored, process


async def _in_process(folder: Path, tags: list[str], concurrency: int) -> float:
    """The same runs through ``Workflow.arun`` (the EagerExecutor) in this process."""
    sys.path.insert(0, str(folder))
    from plait.graphs import load_workflow

    workflow = load_workflow(folder / "load.yaml", runs_dir=folder / "inproc-runs")
    slots = asyncio.Semaphore(concurrency)

    async def one(tag: str) -> None:
        async with slots:
            result = await workflow.arun({"tag": tag})
            assert result.ok, result.error

    here = os.getcwd()
    os.chdir(folder)  # the tools log their calls in the working folder
    try:
        began = time.perf_counter()
        await asyncio.gather(*(one(tag) for tag in tags))
        return time.perf_counter() - began
    finally:
        os.chdir(here)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output form)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--max-runs", type=int, default=20, help="the server's run slots")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "load_tools.py").write_text(textwrap.dedent(TOOLS))
        (folder / "load.yaml").write_text(textwrap.dedent(WORKFLOW).lstrip())
        port = _free_port()
        process = _start(folder, port, args.max_runs)
        try:
            wave1 = [f"w1-{i}" for i in range(args.runs)]
            latencies, wall = asyncio.run(_wave(f"http://127.0.0.1:{port}", wave1, args.clients))
            wave2 = [f"w2-{i}" for i in range(args.runs)]
            accepted, lost, stored, process = asyncio.run(
                _crash_wave(folder, port, wave2, args.clients, args.max_runs, process)
            )
        finally:
            process.terminate()
            process.wait(timeout=60)
        duplicated, cut_off = _duplicates((folder / "calls.log").read_text().splitlines(), stored)
        # Runs in wave 1 that did not end done count as lost too.
        lost += args.runs - len(latencies)
        inproc_wall = asyncio.run(
            _in_process(folder, [f"ip-{i}" for i in range(args.runs)], args.max_runs)
        )
    quantiles = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [0.0] * 19
    print(
        json.dumps(
            {
                "runs": args.runs + accepted,
                "clients": args.clients,
                "lost": lost,
                "duplicated_tasks": duplicated,
                "p50_s": round(statistics.median(latencies), 3) if latencies else None,
                "p95_s": round(quantiles[18], 3),
                "throughput_runs_per_s": round(len(latencies) / wall, 2),
                "in_process_runs_per_s": round(args.runs / inproc_wall, 2),
                "serve_overhead_ratio": round(wall / inproc_wall, 3),
                "crash_wave_accepted_before_kill": accepted,
                "rerun_cut_off_tasks": cut_off,
            }
        )
    )


if __name__ == "__main__":
    main()
