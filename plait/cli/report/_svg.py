"""The drawings of a run report, as inline SVG: the plan's DAG and the Gantt timeline.

Layout is computed here (no script, no network): the DAG is drawn in layers by
dependency depth, its edges routed orthogonally through the gaps between columns
and rows so that no edge crosses a box; the timeline has one row per task on a shared time axis, so
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
    boxes = {c: [place[i][1] for i in ids] for c, ids in columns.items()}
    rows = max((len(v) for v in columns.values()), default=1)
    edge = 0
    for t in tasks:
        for dep in t["deps"]:
            if dep not in place:
                continue
            points = _route(place[dep], place[t["id"]], boxes, rows, edge)
            edge += 1
            shown = " ".join(f"{x:g},{y:g}" for x, y in points)
            out.append(
                f"<polyline points='{shown}' fill='none' stroke='#57606a'"
                " marker-end='url(#arrow)'/>"
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


def _route(
    source: tuple[int, int],
    target: tuple[int, int],
    boxes: dict[int, list[int]],
    rows: int,
    edge: int,
) -> list[tuple[float, float]]:
    """An edge as orthogonal segments that keep to the gaps, never through a box.

    Out of the source's right side into the gap after its column, along that gap
    to a lane, along the lane to the gap before the target's column, along that
    gap to the target's height, and into its left side. A lane is the middle of a
    gap between rows (or above or below every box): the one nearest the ends
    that no box of the crossed columns covers. Nothing but gaps is crossed, and
    gaps hold no boxes, so no segment passes through a box. A small offset per
    edge keeps edges sharing a gap or a lane apart.
    """
    (x1, y1), (x2, y2) = source, target
    nudge = ((edge % 5) - 2) * 3  # -6..6 px: within a 50 px column gap and a 14 px row gap
    start_y, end_y = y1 + _NODE_H / 2, y2 + _NODE_H / 2
    out_x = x1 + _NODE_W + _COL_GAP / 2 + nudge
    in_x = x2 - _COL_GAP / 2 + nudge
    crossed = [
        col
        for col in boxes
        if min(out_x, in_x) < 10 + col * (_NODE_W + _COL_GAP) + _NODE_W
        and 10 + col * (_NODE_W + _COL_GAP) < max(out_x, in_x)
    ]
    if not crossed:  # neighbouring columns: one gap, no lane needed
        return [(x1 + _NODE_W, start_y), (out_x, start_y), (out_x, end_y), (x2, end_y)]
    step = _NODE_H + _ROW_GAP
    lanes = [10 + row * step - _ROW_GAP / 2 + nudge / 3 for row in range(rows + 1)]
    free = [
        y
        for y in lanes
        if not any(top < y < top + _NODE_H for col in crossed for top in boxes[col])
    ]
    lane = min(free, key=lambda y: abs(y - start_y) + abs(y - end_y))
    return [
        (x1 + _NODE_W, start_y),
        (out_x, start_y),
        (out_x, lane),
        (in_x, lane),
        (in_x, end_y),
        (x2, end_y),
    ]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
