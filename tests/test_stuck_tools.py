"""Sync tools that never return: they must not starve the run's store, later steps, or exit."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from plait.errors import ToolError
from plait.graphs import load_workflow
from plait.tools import tool
from plait.tools._threads import ThreadLane
from tests.workflow_files import helpers

ROOT = Path(__file__).resolve().parents[1]
HELPERS = "tests.workflow_files.helpers"

STUCK_STEP = "    - {id: s%d, tool: block, args: {n: %d}, timeout_s: 0.2, continue_on_error: true}"


def _workflow(tmp_path: Path, last: str = "tool: shout, args: {text: still here}") -> Path:
    """Six steps stuck in a sync tool (each times out), then a step after the first."""
    lines = [
        "tools:",
        f'  block: {{function: "{HELPERS}:block_forever"}}',
        f'  shout: {{function: "{HELPERS}:shout"}}',
        "workflow:",
        "  kind: steps",
        '  output: "${after}"',
        "  steps:",
        *(STUCK_STEP % (i, i) for i in range(1, 7)),
        f"    - {{id: after, {last}, depends_on: [s1]}}",
    ]
    path = tmp_path / "stuck.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_six_timed_out_sync_tools_do_not_starve_the_store_or_a_later_step(tmp_path):
    # The default executor of a 2-CPU machine (min(32, cpus + 4) threads): six stuck
    # tools on it would leave no thread for the store's commits or the next tool.
    default = ThreadPoolExecutor(max_workers=6)
    asyncio.get_running_loop().set_default_executor(default)
    wf = load_workflow(_workflow(tmp_path), runs_dir=tmp_path / "runs")
    try:
        async with asyncio.timeout(60):  # a guard against the old deadlock, not a measurement
            result = await wf.arun(run_id="stuck")
    finally:
        helpers.STUCK.set()  # frees the stuck threads, wherever they run
        default.shutdown(wait=False)
    assert result.answer == "STILL HERE"
    assert result.results["after"] == "STILL HERE"
    record = json.loads((tmp_path / "runs" / "stuck" / "run.json").read_text())
    assert record["steps"]["after"] == "done"
    assert all("timed out" in record["steps"][f"s{i}"] for i in range(1, 7)), record["steps"]


@pytest.fixture(autouse=True)
def _stuck_is_reset():
    helpers.STUCK.clear()
    yield
    helpers.STUCK.clear()


async def test_an_abandoned_call_frees_its_place_and_too_many_are_refused():
    lane = ThreadLane("test-lane", max_workers=1, max_abandoned=2)
    release = threading.Event()
    try:
        for _ in range(2):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await lane.run(release.wait)
        assert lane.abandoned == 2
        # Two stuck calls hold no place: with max_workers=1 this still runs...
        # ...but only up to the cap on abandoned calls:
        with pytest.raises(ToolError, match="2 timed-out or cancelled calls .* still running"):
            await lane.run(lambda: 1)
        release.set()
        for _ in range(200):  # the stuck calls end; the lane takes calls again
            if lane.abandoned == 0:
                break
            await asyncio.sleep(0.01)
        assert await lane.run(lambda: 42) == 42
    finally:
        release.set()


async def test_a_stuck_call_does_not_hold_the_only_worker():
    lane = ThreadLane("test-lane", max_workers=1, max_abandoned=5)
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await lane.run(release.wait)
        assert await lane.run(lambda: "next") == "next"
        assert all(t.daemon for t in threading.enumerate() if t.name.startswith("test-lane"))
    finally:
        release.set()


async def test_sync_tools_run_in_the_callers_context_and_raise_their_errors():
    import contextvars

    where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="none")
    where.set("caller")

    @tool
    def look() -> str:
        """Say where it runs."""
        return f"{where.get()} on {threading.current_thread().name}"

    @tool
    def broken() -> str:
        """Fail."""
        raise ValueError("bad")

    said = await look.acall({})
    assert said.startswith("caller on plait-tool-")
    with pytest.raises(ValueError, match="bad"):
        await broken.acall({})


def _env(state: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    return {**os.environ, "PLAIT_STATE_DIR": str(state), "PYTHONPATH": path}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_plait_run_with_six_stuck_tools_recorded_interrupted(tmp_path, signum):
    # Six tools time out and stay stuck; the later step blocks too, without a time
    # limit, so the run is still going when the signal comes.
    path = _workflow(tmp_path, last="tool: block, args: {n: 7}")
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "plait", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(state),
        cwd=ROOT,
    )
    seen = []
    assert process.stderr is not None
    for line in process.stderr:
        seen.append(line)
        if "after block started" in line:
            break
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("plait run did not end after the signal:\n" + "".join(seen))
    assert process.returncode == 128 + signum, err
    assert "plait run --resume" in err and "Traceback" not in err
    (record_path,) = (state / "runs").glob("*/run.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "interrupted"
    assert record["attempts"][-1]["status"] == "interrupted"
    assert (
        record["error"].startswith("interrupted") and signal.Signals(signum).name in record["error"]
    )


def test_plait_run_in_process_gives_back_the_signal_handlers(tmp_path, monkeypatch, capsys):
    from plait.cli import main

    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))

    def mine(signum, frame):  # a caller's own handler
        raise AssertionError("not called")

    before = signal.signal(signal.SIGTERM, mine)
    try:
        path = _workflow(tmp_path)
        text = path.read_text().replace("timeout_s: 0.2", "timeout_s: 0.05")
        path.write_text(text)
        helpers.STUCK.set()  # nothing blocks here
        assert main(["run", str(path), "-q"]) == 0
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)


async def test_a_call_cancelled_while_queued_never_runs():
    lane = ThreadLane("test-lane", max_workers=1, max_abandoned=5)
    release = threading.Event()
    ran: list[str] = []
    try:
        busy = asyncio.ensure_future(lane.run(release.wait))
        await asyncio.sleep(0.05)  # the only worker is busy with it
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await lane.run(ran.append, "queued")
        release.set()
        await busy
        assert await lane.run(lambda: "after") == "after"
        assert ran == [] and lane.abandoned == 0
    finally:
        release.set()
