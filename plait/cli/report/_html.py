"""Run reports: one self-contained HTML file per run, read from its trace.

:func:`write_html_report` reads ``<run_dir>/trace.jsonl`` (written by
:func:`plait.tracing.record_run`) and ``run.json`` when there is one, and
writes a page that opens anywhere without a network: styles, scripts and
drawings (SVG) are inline. It shows the DAG of each executed plan with tasks
coloured by state, a Gantt timeline of the tasks (bars that overlap ran in
parallel), tokens / cached tokens / cost per agent, each model request's
priority and queue wait, router decisions, circuit breakers that opened or
closed, and MemoryGuard rejections.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from plait.errors import ConfigError
from plait.tracing import read_trace

from ._svg import STATE_COLORS, dag_svg, gantt_svg

__all__ = [
    "STATE_COLORS",
    "breaker_events",
    "build_html_report",
    "model_calls",
    "write_html_report",
]

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
table{border-collapse:collapse;margin:4px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.n{text-align:right}
.meta{color:#57606a}.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
svg text{font:12px system-ui,sans-serif}.sel rect{stroke:#0969da;stroke-width:3}
"""

# Clicking a task (in the DAG or the timeline) highlights it in both; the
# summary line is computed here from the embedded data.
_SCRIPT = """
const data = JSON.parse(document.getElementById('plait-data').textContent);
const peak = data.peak_parallelism, n = data.tasks.length;
document.getElementById('js-summary').textContent =
  n + ' tasks, at most ' + peak + ' running at once';
document.querySelectorAll('[data-task]').forEach(el => el.addEventListener('click', () => {
  const key = el.getAttribute('data-task');
  document.querySelectorAll('[data-task]').forEach(other =>
    other.classList.toggle('sel', other.getAttribute('data-task') === key));
}));
"""


def write_html_report(run_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the HTML report of the run recorded in ``run_dir``.

    Args:
        run_dir: the run's directory (holding ``trace.jsonl``).
        out_path: where to write (default: ``run_dir/report.html``).

    Returns:
        The path written.

    Raises:
        ConfigError: the run directory has no trace.
    """
    run_dir = Path(run_dir)
    records = read_trace(run_dir / "trace.jsonl")
    info: dict[str, Any] = {}
    run_json = run_dir / "run.json"
    if run_json.exists():
        try:
            info = json.loads(run_json.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{run_json} is not valid JSON ({e.msg})") from e
    out = Path(out_path) if out_path is not None else run_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_html_report(records, info), encoding="utf-8")
    return out


def build_html_report(records: list[dict[str, Any]], info: dict[str, Any] | None = None) -> str:
    """The report page for a run's span records (see :func:`plait.tracing.read_trace`)."""
    info = info or {}
    spans = [r for r in records if r.get("type", "span") == "span" and r.get("start")]
    t0 = min((s["start"] for s in spans), default=0.0)
    tasks = _tasks(spans, t0)
    root = next((s for s in spans if s.get("parent_id") is None), None)
    run_id = info.get("run_id") or (root or {}).get("attributes", {}).get("plait.run_id", "")
    status = info.get("status") or ("failed" if any(s["status"] == "error" for s in spans) else "")
    wall = max((s["end"] or s["start"] for s in spans), default=t0) - t0
    data = {
        "run_id": run_id,
        "tasks": tasks,
        "peak_parallelism": _peak(tasks),
    }
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>plait run {escape(str(run_id))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Run {escape(str(run_id))}</h1>",
        f"<p class='meta'>status: <b>{escape(str(status or 'unknown'))}</b> · "
        f"{wall:.2f} s · {len(spans)} spans · <span id='js-summary'></span></p>",
        _answer(info),
        _legend(),
        "<h2>Timeline</h2>",
        gantt_svg(tasks) if tasks else "<p>No tasks ran.</p>",
        "<h2>Plan</h2>",
        *(dag_svg([t for t in tasks if t["group"] == g]) for g in _groups(tasks)),
        "<h2>Agents and models</h2>",
        _agents_table(spans),
        "<h2>Model requests</h2>",
        _requests_table(spans),
        "<h2>Router decisions</h2>",
        _events_table(spans, "plait.route", _ROUTE_COLUMNS),
        "<h2>Circuit breakers</h2>",
        _breakers_table(spans),
        "<h2>Memory guard</h2>",
        _events_table(spans, "plait.guard.rejected", _GUARD_COLUMNS),
        "<h2>Tool calls</h2>",
        _tools_table(spans),
        "<script type='application/json' id='plait-data'>",
        json.dumps(data).replace("</", "<\\/"),
        f"</script><script>{_SCRIPT}</script></body></html>",
    ]
    return "".join(parts)


def _tasks(spans: list[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    """Task spans as rows: one plan execution (``plait.execute`` span) is one group."""
    groups: dict[str, int] = {}
    rows = []
    for s in sorted(spans, key=lambda s: s["start"]):
        if s["name"] != "plait.task":
            continue
        a = s["attributes"]
        group = groups.setdefault(s.get("parent_id") or "", len(groups) + 1)
        rows.append(
            {
                "key": f"{group}:{a.get('plait.task.id')}",
                "group": group,
                "id": str(a.get("plait.task.id", "?")),
                "tool": str(a.get("plait.task.tool", "?")),
                "deps": [str(d) for d in a.get("plait.task.dependencies", [])],
                "state": str(a.get("plait.task.status", "running")),
                "start": s["start"] - t0,
                "end": (s["end"] or s["start"]) - t0,
                "error": s.get("error"),
            }
        )
    return rows


def _groups(tasks: list[dict[str, Any]]) -> list[int]:
    return sorted({t["group"] for t in tasks})


def _peak(tasks: list[dict[str, Any]]) -> int:
    edges = sorted(
        [(t["start"], 1) for t in tasks if t["end"] > t["start"]]
        + [(t["end"], -1) for t in tasks if t["end"] > t["start"]]
    )
    peak = running = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def _answer(info: dict[str, Any]) -> str:
    parts = []
    if info.get("answer") is not None:
        parts.append(f"<p><b>Answer:</b> {escape(str(info['answer']))}</p>")
        untrusted = info.get("untrusted_sources") or []
        rests = ", ".join(str(s) for s in untrusted) or "trusted sources only"
        parts.append(f"<p class='sources'><b>Rests on (untrusted):</b> {escape(rests)}</p>")
    for violation in info.get("violations") or []:
        parts.append(f"<p class='refused'><b>Refused by policy:</b> {escape(str(violation))}</p>")
    if info.get("error"):
        parts.append(f"<p><b>Error:</b> {escape(str(info['error']))}</p>")
    return "".join(parts)


def _legend() -> str:
    items = "".join(
        f"<span><i style='background:{color}'></i>{escape(state)}</span>"
        for state, color in STATE_COLORS.items()
    )
    return f"<p class='legend'>{items}</p>"


def _table(
    headers: list[str], rows: list[list[Any]], numeric: frozenset[int] | set[int] = frozenset()
) -> str:
    if not rows:
        return "<p class='meta'>None.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='n'>{escape(_fmt(v))}</td>"
            if i in numeric
            else f"<td>{escape(_fmt(v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def model_calls(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Model calls of a run's spans, summed per agent, router and the backend that answered.

    A routed call names the backend that served it (for a fallback chain, the one
    that answered, not the first one tried) and its router; an unrouted call
    names its backend and no router.
    """
    by_key: dict[tuple[str, str, str], dict[str, Any]] = {}
    for s in spans:
        a = s["attributes"]
        if a.get("gen_ai.operation.name") != "chat":
            continue
        router = str(a.get("plait.route.router") or "")
        backend = str(a.get("plait.route.backend") or a.get("plait.backend") or "-")
        key = (str(a.get("gen_ai.agent.name") or "-"), router, backend)
        row = by_key.setdefault(
            key,
            {
                "agent": key[0],
                "router": router,
                "backend": backend,
                "calls": 0,
                "failed": 0,
                "input_tokens": 0,
                "cached_tokens": 0,
                "output_tokens": 0,
                "forced_tokens": 0,
                "drafted_tokens": 0,
                "accepted_tokens": 0,
                "cache_hits": 0,
                "cost": 0.0,
                "cost_saved": 0.0,
            },
        )
        row["calls"] += 1
        row["failed"] += s.get("status") == "error"
        row["input_tokens"] += a.get("gen_ai.usage.input_tokens", 0)
        row["cached_tokens"] += a.get("plait.usage.cached_input_tokens", 0)
        row["output_tokens"] += a.get("gen_ai.usage.output_tokens", 0)
        row["forced_tokens"] += a.get("plait.usage.forced_output_tokens", 0)
        row["drafted_tokens"] += a.get("plait.usage.drafted_tokens", 0)
        row["accepted_tokens"] += a.get("plait.usage.accepted_draft_tokens", 0)
        row["cache_hits"] += bool(a.get("plait.cache.hit"))
        row["cost"] += a.get("plait.cost", 0.0)
        row["cost_saved"] += a.get("plait.cache.saved_cost", 0.0)
    return [by_key[k] for k in sorted(by_key)]


# (field, column header); every field but the costs is a whole count.
_CALL_COLUMNS = (
    ("calls", "calls"),
    ("input_tokens", "input tokens"),
    ("cached_tokens", "cached"),
    ("output_tokens", "output tokens"),
    ("forced_tokens", "forced"),
    ("drafted_tokens", "drafted"),
    ("accepted_tokens", "accepted"),
    ("cache_hits", "cache hits"),
    ("cost", "cost"),
    ("cost_saved", "cost saved"),
)
_COST_COLUMNS = {"cost", "cost_saved"}


def _agents_table(spans: list[dict[str, Any]]) -> str:
    rows: list[list[Any]] = [
        [c["agent"], c["router"], c["backend"], *(c[f] for f, _ in _CALL_COLUMNS)]
        for c in model_calls(spans)
    ]
    counts = range(3, 3 + len(_CALL_COLUMNS))
    if rows:
        totals = [
            total if field in _COST_COLUMNS else int(total)
            for (field, _), total in zip(
                _CALL_COLUMNS, (sum(float(r[i]) for r in rows) for i in counts), strict=True
            )
        ]
        rows.append(["total", "", "", *totals])
    headers = ["agent", "router", "backend (answered)", *(h for _, h in _CALL_COLUMNS)]
    return _table(headers, rows, numeric=set(counts))


def _requests_table(spans: list[dict[str, Any]]) -> str:
    """Each model call in start order: its scheduling priority and how long it queued."""
    rows = []
    for s in sorted(spans, key=lambda s: s["start"]):
        a = s["attributes"]
        if a.get("gen_ai.operation.name") != "chat":
            continue
        rows.append(
            [
                a.get("gen_ai.agent.name"),
                a.get("plait.route.backend") or a.get("plait.backend"),
                s["status"],
                a.get("plait.request.priority", 0),
                a.get("plait.request.queue_wait_s"),
                a.get("plait.latency.first_token_s"),
                (s["end"] or s["start"]) - s["start"],
            ]
        )
    headers = ["agent", "backend", "status", "priority", "queue wait (s)", "first token (s)"]
    return _table([*headers, "seconds"], rows, {3, 4, 5, 6})


_ROUTE_COLUMNS = [
    ("router", "plait.route.router"),
    ("backend", "plait.route.backend"),
    ("reason", "plait.route.reason"),
    ("score", "plait.route.score"),
    ("threshold", "plait.route.threshold"),
    ("skipped", "plait.route.skipped"),
    ("outcome", "plait.route.outcome"),
    ("cost", "plait.cost"),
]
_GUARD_COLUMNS = [
    ("stage", "plait.guard.stage"),
    ("record", "plait.guard.record"),
    ("source", "plait.guard.source"),
    ("reason", "plait.guard.reason"),
]


def breaker_events(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Circuits that opened or closed during a run, in time order.

    Each is ``{"at", "agent", "router", "backend", "state", "reason"}`` from a
    ``plait.breaker`` event (``state``: ``open`` or ``closed``).
    """
    found = []
    for s in spans:
        agent = s["attributes"].get("gen_ai.agent.name")
        for event in s.get("events", []):
            if event.get("name") != "plait.breaker":
                continue
            a = event.get("attributes", {})
            found.append(
                {
                    "at": event.get("at") or s["start"],
                    "agent": agent,
                    "router": a.get("plait.breaker.router"),
                    "backend": a.get("plait.breaker.backend"),
                    "state": a.get("plait.breaker.state"),
                    "reason": a.get("plait.breaker.reason"),
                }
            )
    return sorted(found, key=lambda e: e["at"])


def _breakers_table(spans: list[dict[str, Any]]) -> str:
    t0 = min((s["start"] for s in spans), default=0.0)
    rows: list[list[Any]] = [
        [e["at"] - t0, e["agent"], e["router"], e["backend"], e["state"], e["reason"]]
        for e in breaker_events(spans)
    ]
    headers = ["at (s)", "agent", "router", "backend", "circuit", "why"]
    return _table(headers, rows, numeric={0})


def _events_table(spans: list[dict[str, Any]], name: str, columns: list[tuple[str, str]]) -> str:
    rows = []
    for s in sorted(spans, key=lambda s: s["start"]):
        agent = s["attributes"].get("gen_ai.agent.name")
        for event in s.get("events", []):
            if event.get("name") == name:
                attrs = event.get("attributes", {})
                rows.append([agent, *(attrs.get(key) for _, key in columns)])
    return _table(["agent", *(title for title, _ in columns)], rows)


def _tools_table(spans: list[dict[str, Any]]) -> str:
    rows = []
    for s in sorted(spans, key=lambda s: s["start"]):
        a = s["attributes"]
        if a.get("gen_ai.operation.name") != "execute_tool":
            continue
        duration = (s["end"] or s["start"]) - s["start"]
        rows.append(
            [
                a.get("gen_ai.agent.name"),
                a.get("gen_ai.tool.name"),
                s["status"],
                duration,
                a.get("gen_ai.tool.call.arguments"),
                a.get("gen_ai.tool.call.result"),
            ]
        )
    return _table(["agent", "tool", "status", "seconds", "arguments", "result"], rows, {3})
