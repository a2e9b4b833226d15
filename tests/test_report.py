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
from plait._span_attributes import usage_attributes
from plait.agents import Agent
from plait.backends.routing import CostLedger, Price, RuleRouter
from plait.backends.testing import ScriptedBackend
from plait.cli.report import STATE_COLORS, build_html_report, model_calls, write_html_report
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
    # calls, input, cached, output, forced, drafted, accepted, cache hits, cost, cost saved
    assert cells == ["1", "120", "100", "8", "0", "0", "0", "0", "0.152", "0"]
    assert "gpt-small" in dom and "rules" in dom


def test_report_of_a_run_without_a_trace_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trace.jsonl"):
        write_html_report(tmp_path)


def test_model_calls_sum_forced_drafted_and_accepted_tokens() -> None:
    def call(forced: int, drafted: int, accepted: int) -> dict[str, Any]:
        attributes = usage_attributes(
            Usage(
                completion_tokens=20,
                forced_tokens=forced,
                drafted_tokens=drafted,
                accepted_tokens=accepted,
            )
        )
        attributes.update({"gen_ai.operation.name": "chat", "gen_ai.agent.name": "x"})
        clean = {k: v for k, v in attributes.items() if v is not None}
        return {"name": "chat m", "start": 1.0, "end": 2.0, "attributes": clean}

    (row,) = model_calls([call(5, 0, 0), call(2, 8, 6)])
    assert (row["calls"], row["output_tokens"]) == (2, 40)
    assert (row["forced_tokens"], row["drafted_tokens"], row["accepted_tokens"]) == (7, 8, 6)


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
    assert "<th>forced</th>" in html and "<th>accepted</th>" in html
    assert "r</script>" not in html  # the run id is escaped everywhere
    assert "No tasks ran." in html


def test_report_lists_each_model_request_with_its_priority_and_queue_wait() -> None:
    def chat(start: float, priority: int | None, wait: float | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {"gen_ai.operation.name": "chat", "plait.backend": "local"}
        if priority is not None:
            attributes["plait.request.priority"] = priority
        if wait is not None:
            attributes["plait.request.queue_wait_s"] = wait
        attributes["gen_ai.agent.name"] = f"agent{start:g}"
        span = {"name": "chat local", "span_id": str(start), "parent_id": None, "status": "ok"}
        return {**span, "start": start, "end": start + 1.0, "attributes": attributes}

    html = build_html_report([chat(2.0, None, None), chat(1.0, 3, 0.125)])
    assert "<th>priority</th>" in html and "<th>queue wait (s)</th>" in html
    table = html[html.index("<h2>Model requests</h2>") :]
    first, second = table.index("agent1"), table.index("agent2")
    assert first < second  # in start order
    row = table[first : table.index("</tr>", first)]
    assert "<td class='n'>3</td>" in row and "<td class='n'>0.125</td>" in row
    row = table[second : table.index("</tr>", second)]
    assert "<td class='n'>0</td>" in row  # neutral priority, no wait known


# -- the DAG's edges keep out of boxes ------------------------------------------------


def _plan_tasks(deps: dict[str, list[str]]) -> list[dict[str, Any]]:
    return [
        {"id": i, "key": i, "tool": "t", "state": "done", "deps": d, "error": None}
        for i, d in deps.items()
    ]


def _segments(svg: str) -> list[tuple[float, float, float, float]]:
    """Every straight piece of every edge (``<line>`` or ``<polyline>``)."""
    import re

    segments = []
    for x1, y1, x2, y2 in re.findall(
        r"<line x1='([\d.]+)' y1='([\d.]+)' x2='([\d.]+)' y2='([\d.]+)'", svg
    ):
        segments.append((float(x1), float(y1), float(x2), float(y2)))
    for points in re.findall(r"<polyline points='([^']*)'", svg):
        xy = [tuple(map(float, p.split(","))) for p in points.split()]
        segments.extend((a[0], a[1], b[0], b[1]) for a, b in zip(xy, xy[1:], strict=False))
    return segments


def _rects(svg: str) -> list[tuple[float, float, float, float]]:
    import re

    found = re.findall(r"<rect x='([\d.]+)' y='([\d.]+)' width='([\d.]+)' height='([\d.]+)'", svg)
    return [(float(x), float(y), float(x) + float(w), float(y) + float(h)) for x, y, w, h in found]


def _enters(segment: tuple[float, float, float, float], rect: tuple[float, ...]) -> bool:
    """Whether a straight segment passes through the open interior of a rectangle
    (Liang-Barsky clipping: touching a border, as an arrow tip does, is not entering)."""
    x1, y1, x2, y2 = segment
    left, top, right, bottom = rect
    t0, t1 = 0.0, 1.0
    dx, dy = x2 - x1, y2 - y1
    for p, q in ((-dx, x1 - left), (dx, right - x1), (-dy, y1 - top), (dy, bottom - y1)):
        if p == 0:
            if q <= 0:
                return False
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 >= t1:
            return False
    return True


_SHAPES = {
    "skip-over-a-chain": {"a": [], "b": ["a"], "c": ["b"], "d": ["a", "c"]},
    "diamond-with-a-bypass": {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["a", "d"]},
    "fan-in-from-every-depth": {
        "a": [], "b": ["a"], "c": ["b"], "d": ["c"], "e": ["d"],
        "x": [], "y": ["x"], "z": ["a", "b", "c", "d", "e", "x", "y"],
    },
    "wide-then-long": {
        **{f"w{i}": [] for i in range(6)},
        "m": ["w0"], "n": ["m"], "o": ["n", "w5", "w3"], "p": ["o", "w1", "w2"],
    },
}  # fmt: skip


def _random_plan(seed: int, n: int = 14) -> dict[str, list[str]]:
    import random

    rng = random.Random(seed)
    deps: dict[str, list[str]] = {}
    for i in range(n):
        earlier = list(deps)
        deps[f"t{i}"] = rng.sample(earlier, k=min(len(earlier), rng.randint(0, 3)))
    return deps


@pytest.mark.parametrize(
    "deps",
    [*_SHAPES.values(), _random_plan(1), _random_plan(2), _random_plan(3)],
    ids=[*_SHAPES, "random-1", "random-2", "random-3"],
)
def test_dag_edges_never_cross_a_box(deps: dict[str, list[str]]) -> None:
    from plait.cli.report._svg import dag_svg

    svg = dag_svg(_plan_tasks(deps))
    rects, segments = _rects(svg), _segments(svg)
    assert len(rects) == len(deps)
    assert segments, "no edges drawn"
    crossing = [(s, r) for s in segments for r in rects if _enters(s, r)]
    assert crossing == []
    # One edge per dependency, each from its source's right side to its target's left side.
    import re

    edges = re.findall(r"<polyline points='([^']*)'", svg)
    assert len(edges) == sum(len(d) for d in deps.values())
    rights = {(r[2], (r[1] + r[3]) / 2) for r in rects}
    lefts = {(r[0], (r[1] + r[3]) / 2) for r in rects}
    for points in edges:
        xy = [tuple(map(float, p.split(","))) for p in points.split()]
        assert xy[0] in rights and xy[-1] in lefts, points
