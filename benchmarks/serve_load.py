"""Load and crash benchmark for ``plait serve``; prints one JSON object.

A tool-only steps workflow (four tasks of 50-150 ms: one, two in parallel, one)
is served by a real ``plait serve`` subprocess on a loopback port.

- Timed rounds (``--rounds``), each a served wave then the same workload
  in-process, side by side so that both see the machine's load of the moment.
  A wave: ``--runs`` runs from ``--clients`` concurrent clients, each posting a
  run and following its event stream to the end: ``p50_s``/``p95_s`` (post to
  the stream's last event) and ``throughput_runs_per_s``. The clients are a
  lean HTTP/1.1 client (see ``_Connection``): they share the cores with the
  server, and the in-process side has no client to pay for. In-process:
  ``Workflow.arun`` on the ``EagerExecutor``, as many at once as the server has
  run slots, on the event loop uvicorn gives the server (uvloop where
  installed). ``serve_overhead_ratio``: the median over the rounds of the
  wave's wall time over the in-process wall time (each round's in
  ``serve_overhead_ratios``); each side has one untimed warm-up run first.
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
from typing import Any

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


class _Connection:
    """A lean HTTP/1.1 keep-alive client for the timed wave.

    The load generator shares this machine's cores with the server, and the
    in-process comparison has no client at all: httpx costs about as much CPU
    per run as the server's HTTP work itself. This sends the same requests
    (HTTP/1.1, one kept-alive connection per client) and reads every byte of
    every event stream, on a fraction of the CPU.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def _head(self) -> tuple[int, dict[bytes, bytes]]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers

    async def _body(self, headers: dict[bytes, bytes]) -> bytes:
        if b"content-length" in headers:
            return await self.reader.readexactly(int(headers[b"content-length"]))
        parts = []
        while True:  # chunked: read each chunk until the last (size 0)
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            parts.append((await self.reader.readexactly(size + 2))[:-2])
            if size == 0:
                return b"".join(parts)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status, headers = await self._head()
        return status, await self._body(headers)

    def close(self) -> None:
        self.writer.close()


def _last_run_status(stream: bytes) -> str:
    """The status of the stream's last ``run`` event."""
    status = ""
    for frame in stream.split(b"\n\n"):
        if b"\nevent: run\n" in frame:
            status = json.loads(frame.split(b"\ndata: ", 1)[1])["status"]
    return status


async def _wave(port: int, tags: list[str], clients: int) -> tuple[list[float], float, float]:
    """Every tag's run through ``clients`` concurrent clients: latencies, wall and CPU time."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for tag in tags:
        queue.put_nowait(tag)
    latencies: list[float] = []

    async def client_loop() -> None:
        connection = await _Connection.open(port)
        try:
            while not queue.empty():
                tag = queue.get_nowait()
                began = time.perf_counter()
                body = json.dumps({"workflow": "load", "inputs": {"tag": tag}}).encode()
                status, answer = await connection.request("POST", "/runs", body)
                assert status == 202, answer
                run_id = json.loads(answer)["run_id"]
                status, stream = await connection.request("GET", f"/runs/{run_id}/events")
                if _last_run_status(stream) == "done":
                    latencies.append(time.perf_counter() - began)
        finally:
            connection.close()

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return latencies, time.perf_counter() - began, time.process_time() - cpu


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


def _server_loop() -> Any:
    """The event loop uvicorn runs the server on (uvloop where installed), for the
    in-process side too: the ratio compares plait serve with Workflow.arun, not
    two event loop implementations."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used, where /proc tells."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _in_process(folder: Path, tags: list[str], concurrency: int) -> tuple[float, float]:
    """The same runs through ``Workflow.arun`` (the EagerExecutor) in this process."""
    if str(folder) not in sys.path:
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
        # Untimed, as the server's first run is; its own tag keeps the call log's
        # duplicate check exact.
        await one(f"warm-up-{tags[0]}")
        began, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(tag) for tag in tags))
        return time.perf_counter() - began, time.process_time() - cpu
    finally:
        os.chdir(here)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output form)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed rounds (a served wave, then in-process)"
    )
    parser.add_argument("--max-runs", type=int, default=20, help="the server's run slots")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "load_tools.py").write_text(textwrap.dedent(TOOLS))
        (folder / "load.yaml").write_text(textwrap.dedent(WORKFLOW).lstrip())
        port = _free_port()
        process = _start(folder, port, args.max_runs)
        latencies: list[float] = []
        walls: list[float] = []
        inproc_walls: list[float] = []
        server_cpu: float | None = 0.0
        client_cpu = inproc_cpu = 0.0
        try:
            with asyncio.Runner(loop_factory=_server_loop()) as runner:
                asyncio.run(_wave(port, ["warm-up-served"], 1))  # first-use setup
                for round_ in range(args.rounds):
                    # Side by side: a served wave, then the same runs in-process.
                    tags = [f"w1-{round_}-{i}" for i in range(args.runs)]
                    before = _cpu_s(process.pid)
                    done, wall, cpu = asyncio.run(_wave(port, tags, args.clients))
                    after = _cpu_s(process.pid)
                    if server_cpu is not None and before is not None and after is not None:
                        server_cpu += after - before
                    else:
                        server_cpu = None
                    latencies += done
                    walls.append(wall)
                    client_cpu += cpu
                    tags = [f"ip-{round_}-{i}" for i in range(args.runs)]
                    wall, cpu = runner.run(_in_process(folder, tags, args.max_runs))
                    inproc_walls.append(wall)
                    inproc_cpu += cpu
            wave2 = [f"w2-{i}" for i in range(args.runs)]
            accepted, lost, stored, process = asyncio.run(
                _crash_wave(folder, port, wave2, args.clients, args.max_runs, process)
            )
        finally:
            process.terminate()
            process.wait(timeout=60)
        duplicated, cut_off = _duplicates((folder / "calls.log").read_text().splitlines(), stored)
        # Runs of the timed waves that did not end done count as lost too.
        timed = args.runs * args.rounds
        lost += timed - len(latencies)

    def per_run(seconds: float | None) -> float | None:
        return None if seconds is None else round(1000 * seconds / timed, 1)

    ratios = [w / i for w, i in zip(walls, inproc_walls, strict=True)]
    quantiles = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [0.0] * 19
    print(
        json.dumps(
            {
                "runs": timed + accepted,
                "clients": args.clients,
                "lost": lost,
                "duplicated_tasks": duplicated,
                "p50_s": round(statistics.median(latencies), 3) if latencies else None,
                "p95_s": round(quantiles[18], 3),
                "throughput_runs_per_s": round(len(latencies) / sum(walls), 2),
                "in_process_runs_per_s": round(timed / sum(inproc_walls), 2),
                # The median over the rounds of served wall time / in-process wall time.
                "serve_overhead_ratio": round(statistics.median(ratios), 3),
                "serve_overhead_ratios": [round(r, 3) for r in ratios],
                # Where the time goes (CPU per run of the timed waves): both sides
                # and the client share this machine's cores.
                "server_cpu_ms_per_run": per_run(server_cpu),
                "client_cpu_ms_per_run": per_run(client_cpu),
                "in_process_cpu_ms_per_run": per_run(inproc_cpu),
                "crash_wave_accepted_before_kill": accepted,
                "rerun_cut_off_tasks": cut_off,
            }
        )
    )


if __name__ == "__main__":
    main()
