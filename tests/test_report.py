"""HTML run reports, rendered in a real headless Chromium (screenshot and DOM)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from plait import tracing
from plait.agents import Agent
from plait.backends.routing import CostLedger, Price, RuleRouter
from plait.backends.testing import ScriptedBackend
from plait.cli.report import STATE_COLORS, build_html_report, write_html_report
from plait.completions import Completion, Usage
from plait.errors import ConfigError
from plait.graphs import EagerExecutor, Plan, Task, task_runner
from plait.tools import tool

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium package is not installed (.ci/run installs it)"
)


@tool
async def wait(seconds: float) -> float:
    """Wait a while, then return how long."""
    await asyncio.sleep(seconds)
    return seconds


@tool
async def boom(x: int) -> int:
    """Fails after a moment (while tasks 1 and 2 still run)."""
    await asyncio.sleep(0.05)
    raise ValueError(f"cannot {x}")


async def _record_run(run_dir: Path) -> None:
    backend = ScriptedBackend(
        [
            Completion(
                text="done",
                usage=Usage(prompt_tokens=120, cached_prompt_tokens=100, completion_tokens=8),
            )
        ],
        name="gpt-small",
    )
    ledger = CostLedger(prices={"gpt-small": Price(prompt_per_1k=1.0, completion_per_1k=4.0)})
    writer = Agent("writer", "Write.", RuleRouter([], default=backend, ledger=ledger))
    _, runner = task_runner([wait, boom], agents=[writer])
    plan = Plan(
        tasks=(
            Task(id="1", tool="wait", args={"seconds": 0.3}),
            Task(id="2", tool="wait", args={"seconds": 0.3}),
            Task(id="3", tool="writer", args={"task": "sum up $1 and $2"}),
            Task(id="4", tool="boom", args={"x": 1}),
            Task(id="5", tool="wait", args={"seconds": "$4"}),
        )
    )
    with tracing.record_run(run_dir, "r-report"):
        await EagerExecutor(runner).run(plan, run_id="r-report")
    (run_dir / "run.json").write_text(
        json.dumps({"run_id": "r-report", "status": "done", "answer": "all <b>fine</b>"})
    )


def _chromium(*args: str, tmp: Path) -> str:
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _color_mask(image: Any, hex_color: str) -> Any:
    rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])
    return np.all(np.abs(image[:, :, :3].astype(int) - rgb) <= 6, axis=2)


def _boxes(mask: Any) -> list[tuple[int, int, int, int]]:
    """(top, height, left, right) of solid blocks: bands of rows, then runs within a band."""
    rows = np.flatnonzero(mask.any(axis=1))
    boxes = []
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if rows.size else []
    for band in bands:
        top, height = int(band[0]), int(band.size)
        # Read a row near the top: below rounded corners, above any label text.
        cols = np.flatnonzero(mask[top + min(6, height // 2)])
        for run in np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1):
            if run.size:
                boxes.append((top, height, int(run[0]), int(run[-1])))
    return boxes


@needs_chromium
async def test_report_renders_dag_timeline_and_tables_in_chromium(tmp_path: Path) -> None:
    await _record_run(tmp_path)
    page = write_html_report(tmp_path)
    assert page == tmp_path / "report.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # nothing to fetch

    shot = tmp_path / "shot.png"
    _chromium("--window-size=1100,1400", f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
    image = np.array(Image.open(shot).convert("RGB"))

    green = _boxes(_color_mask(image, STATE_COLORS["done"]))
    bars = [b for b in green if b[1] == 16]  # timeline bars are 16 px high
    nodes = [b for b in green if b[1] == 36]  # DAG nodes are 36 px high
    assert len(bars) == 3 and len(nodes) == 3
    # Tasks 1 and 2 ran at the same time: their bars overlap on the time axis.
    first, second, writer = sorted(bars)
    assert first[2] < second[3] and second[2] < first[3]
    # The writer agent waited for both, so its bar starts where they ended.
    assert writer[2] >= max(first[3], second[3]) - 2
    # The failed and the skipped task, once in the timeline and once in the DAG.
    red = _boxes(_color_mask(image, STATE_COLORS["failed"]))
    grey = _boxes(_color_mask(image, STATE_COLORS["skipped"]))
    assert sorted(b[1] for b in red if b[1] > 12) == [16, 36]
    assert sorted(b[1] for b in grey if b[1] > 12) == [16, 36]
    # The DAG is drawn below the timeline.
    assert min(n[0] for n in nodes) > max(b[0] for b in bars)

    dom = _chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    # Filled in by the page's script, so scripts ran.
    assert "5 tasks, at most 3 running at once" in dom
    assert "all &lt;b&gt;fine&lt;/b&gt;" in dom  # answers are escaped, not markup
    # Per-agent tokens, cached tokens and cost; the router's decision.
    row = dom.split("<td>writer</td>", 1)[1].split("</tr>", 1)[0]
    cells = [c.split("</td>")[0] for c in row.split('<td class="n">')[1:]]
    assert cells == ["1", "120", "100", "8", "0.152"]
    assert "gpt-small" in dom and "rules" in dom


def test_report_of_a_run_without_a_trace_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trace.jsonl"):
        write_html_report(tmp_path)


def test_report_tables_from_records() -> None:
    records = [
        {
            "name": "chat m",
            "span_id": "a",
            "parent_id": None,
            "start": 1.0,
            "end": 2.0,
            "status": "ok",
            "attributes": {"gen_ai.operation.name": "chat", "gen_ai.agent.name": "x"},
            "events": [
                {
                    "name": "plait.guard.rejected",
                    "attributes": {"plait.guard.stage": "consensus", "plait.guard.reason": "odd"},
                }
            ],
        }
    ]
    html = build_html_report(records, {"run_id": "r</script>"})
    assert "consensus" in html and "odd" in html
    assert "r</script>" not in html  # the run id is escaped everywhere
    assert "No tasks ran." in html
