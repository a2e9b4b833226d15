"""The drawings of a run report, as inline SVG: the plan's DAG and the Gantt timeline.

Layout is computed here (no script, no network): the DAG is drawn in layers by
dependency depth; the timeline has one row per task on a shared time axis, so
bars that overlap horizontally ran at the same time.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

__all__ = ["STATE_COLORS", "dag_svg", "gantt_svg"]

STATE_COLORS = {
    "done": "#2da44e",
    "failed": "#cf222e",
    "skipped": "#8c959f",
    "restored": "#0969da",
    "running": "#d4a72c",
}
"""Fill colour of a task in each state (also what the report's legend shows)."""

_LABEL_W = 170
_PLOT_W = 760
_ROW_H = 24
_BAR_H = 16
_AXIS_H = 28

_NODE_W = 130
_NODE_H = 36
_COL_GAP = 50
_ROW_GAP = 14


def _color(state: str) -> str:
    return STATE_COLORS.get(state, STATE_COLORS["running"])


def gantt_svg(tasks: list[dict[str, Any]]) -> str:
    """One row per task (in start order), bars from start to end on a shared axis."""
    span = max((t["end"] for t in tasks), default=0.0) or 1.0
    scale = _PLOT_W / span
    height = _AXIS_H + _ROW_H * len(tasks) + 4
    width = _LABEL_W + _PLOT_W + 20
    out = [f"<svg id='gantt' width='{width}' height='{height}'>"]
    step = _tick_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        x = _LABEL_W + tick * scale
        out.append(
            f"<line x1='{x:.1f}' y1='{_AXIS_H - 6}' x2='{x:.1f}' y2='{height}' stroke='#eaeef2'/>"
            f"<text x='{x:.1f}' y='{_AXIS_H - 10}' text-anchor='middle'>{tick:g}s</text>"
        )
        tick += step
    for row, t in enumerate(tasks):
        y = _AXIS_H + row * _ROW_H
        x = _LABEL_W + t["start"] * scale
        w = max((t["end"] - t["start"]) * scale, 3.0)
        title = f"{t['id']} {t['tool']}: {t['state']}, {t['end'] - t['start']:.3f} s"
        if t.get("error"):
            title += f" ({t['error']})"
        out.append(
            f"<g data-task='{escape(t['key'])}' class='bar'><title>{escape(title)}</title>"
            f"<text x='4' y='{y + 13}'>{escape(_short(t['id'] + ' ' + t['tool'], 22))}</text>"
            f"<rect x='{math.floor(x)}' y='{y + 2}' width='{math.ceil(w)}' height='{_BAR_H}'"
            f" fill='{_color(t['state'])}'/></g>"
        )
    out.append("</svg>")
    return "".join(out)


def _tick_step(span: float) -> float:
    raw = span / 8
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def dag_svg(tasks: list[dict[str, Any]]) -> str:
    """The plan drawn left to right: a column per dependency depth, arrows for inputs."""
    by_id = {t["id"]: t for t in tasks}
    depth: dict[str, int] = {}

    def depth_of(task_id: str, seen: frozenset[str] = frozenset()) -> int:
        if task_id not in depth:
            task = by_id[task_id]
            deps = [d for d in task["deps"] if d in by_id and d not in seen]
            depth[task_id] = 1 + max((depth_of(d, seen | {task_id}) for d in deps), default=-1)
        return depth[task_id]

    columns: dict[int, list[str]] = {}
    for t in tasks:
        columns.setdefault(depth_of(t["id"]), []).append(t["id"])
    place: dict[str, tuple[int, int]] = {}
    rank: dict[str, float] = {}
    for col in sorted(columns):
        # Order a column by where its inputs sit, which keeps arrows from crossing.
        ids = sorted(
            columns[col],
            key=lambda i: (
                sum(rank.get(d, 0) for d in by_id[i]["deps"]) / max(len(by_id[i]["deps"]), 1)
            ),
        )
        for row, task_id in enumerate(ids):
            rank[task_id] = row
            place[task_id] = (
                10 + col * (_NODE_W + _COL_GAP),
                10 + row * (_NODE_H + _ROW_GAP),
            )
    width = 20 + max((c for c in columns), default=0) * (_NODE_W + _COL_GAP) + _NODE_W
    height = 20 + max((len(v) for v in columns.values()), default=1) * (_NODE_H + _ROW_GAP)
    out = [
        f"<svg class='dag' width='{width}' height='{height}'>"
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7'"
        " markerHeight='7' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='#57606a'/>"
        "</marker></defs>"
    ]
    for t in tasks:
        x2, y2 = place[t["id"]]
        for dep in t["deps"]:
            if dep not in place:
                continue
            x1, y1 = place[dep]
            out.append(
                f"<line x1='{x1 + _NODE_W}' y1='{y1 + _NODE_H // 2}' x2='{x2}'"
                f" y2='{y2 + _NODE_H // 2}' stroke='#57606a' marker-end='url(#arrow)'/>"
            )
    for t in tasks:
        x, y = place[t["id"]]
        title = f"{t['id']} {t['tool']}: {t['state']}"
        if t.get("error"):
            title += f" ({t['error']})"
        out.append(
            f"<g data-task='{escape(t['key'])}' class='node'><title>{escape(title)}</title>"
            f"<rect x='{x}' y='{y}' width='{_NODE_W}' height='{_NODE_H}' rx='5'"
            f" fill='{_color(t['state'])}'/>"
            f"<text x='{x + 8}' y='{y + 22}' fill='#fff'>"
            f"{escape(_short(t['id'] + ': ' + t['tool'], 17))}</text></g>"
        )
    out.append("</svg>")
    return "".join(out)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
