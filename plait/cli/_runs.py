"""``plait runs list`` and ``plait runs show ID``: the records under ``.plait/runs/``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ._workflow import dump_json

__all__ = ["runs_list_command", "runs_show_command"]


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


def _short(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def runs_list_command(args: argparse.Namespace) -> int:
    """One line per run, newest first; unreadable records are named on stderr."""
    from plait.graphs import scan_runs

    found, broken = scan_runs()
    records = found[: args.limit]
    for bad in broken:
        print(f"plait: warning: {bad.reason}", file=sys.stderr)
    if args.json:
        print(dump_json([r.model_dump(mode="json") for r in records]))
        return 0
    if not records:
        print("no runs yet (plait run FILE starts one)")
        return 0
    for r in records:
        took = f"{r.finished_at - r.started_at:.1f}s" if r.finished_at else "-"
        shown = _short(r.answer if r.status == "done" else r.error or "")
        print(f"{r.run_id}  {_status(r):<11} {took:>7}  {r.workflow}  {shown}")
    return 0


def _trace_lines(run_id: str) -> list[str]:
    """From the run's trace: model calls per agent, naming the backend that answered,
    then each circuit breaker that opened or closed."""
    from plait.errors import ConfigError
    from plait.graphs import run_directory
    from plait.tracing import read_trace

    from .report import breaker_events, model_calls

    try:
        spans = [r for r in read_trace(run_directory(run_id) / "trace.jsonl") if r.get("start")]
    except (ConfigError, OSError, UnicodeDecodeError):
        return []  # no trace kept (or unreadable): the record alone is shown
    lines = []
    for call in model_calls(spans):
        via = f" (router {call['router']})" if call["router"] else ""
        failed = f", {call['failed']} failed" if call["failed"] else ""
        hits = f" ({call['cache_hits']} from the cache)" if call["cache_hits"] else ""
        lines.append(
            f"  model:    {call['agent']}: {call['calls']} call(s){hits} answered by "
            f"{call['backend']}{via}{failed}"
        )
    for event in breaker_events(spans):
        verb = "opened" if event["state"] == "open" else "closed"
        lines.append(
            f"  breaker:  {event['backend']} {verb} in router {event['router']}"
            f" ({event['reason']}; call of {event['agent'] or '-'})"
        )
    return lines


def _status(record: object) -> str:
    """The record's status; a ``running`` one that no process holds ended unrecorded."""
    from plait.graphs import run_directory
    from plait.graphs.workflows._runs import run_is_held

    status = str(getattr(record, "status", ""))
    if status == "running" and not run_is_held(run_directory(getattr(record, "run_id", ""))):
        return "running (not held by any process: it ended unrecorded; --resume finishes it)"
    return status


def runs_show_command(args: argparse.Namespace) -> int:
    """A run's record (inputs, steps, answer, usage), or its HTML report."""
    from plait.graphs import read_run

    record = read_run(args.run_id)
    if args.html is not None:
        from plait.graphs import run_directory

        from .report import write_html_report

        written = write_html_report(run_directory(record.run_id), args.html or None)
        print(f"wrote {written}")
        return 0
    if args.json:
        print(dump_json(record.model_dump(mode="json")))
        return 0
    usage = record.usage
    total = " in all" if len(record.attempts) > 1 else ""
    lines = [
        f"run {record.run_id}: {_status(record)}",
        f"  workflow: {record.workflow} ({record.kind})",
        f"  started:  {_when(record.started_at)}   finished: {_when(record.finished_at)}",
        f"  inputs:   {json.dumps(record.inputs, ensure_ascii=False)}",
        f"  tokens:   {usage.prompt_tokens} prompt ({usage.cached_prompt_tokens} cached), "
        f"{usage.generated_text()}; cost {record.cost:.4f}{total}",
    ]
    cached = usage.cached_text()
    if cached:
        lines.append(f"  cache:    {cached}; cost saved {record.cost_saved:.4f}{total}")
    lines.extend(_trace_lines(record.run_id))
    if len(record.attempts) > 1:
        for number, attempt in enumerate(record.attempts, 1):
            used = attempt.usage
            lines.append(
                f"  attempt {number}: {attempt.status}, started {_when(attempt.started_at)},"
                f" {used.prompt_tokens} prompt + {used.completion_tokens} generated tokens,"
                f" cost {attempt.cost:.4f}"
                + (f"; {_short(attempt.error, 80)}" if attempt.error else "")
            )
    for step, status in record.steps.items():
        lines.append(f"  step {step}: {status}")
    if record.team is not None:
        decisions = record.team.get("decisions") or []
        lines.append(
            f"  team:     {record.team.get('team')} stopped {record.team.get('stop_reason')};"
            f" {len(decisions)} decisions (--json lists them)"
        )
    for violation in record.violations:
        lines.append(f"  refused:  {violation}")
    if record.error:
        lines.append(f"  error:    {record.error}")
    answer = record.answer
    if answer is not None:
        shown = answer if isinstance(answer, str) else dump_json(answer)
        lines.append(f"  answer:   {shown}")
        rests = ", ".join(record.untrusted_sources) or "trusted sources only"
        lines.append(f"  rests on: {rests}")
    if record.status in ("interrupted", "failed"):
        lines.append(f"  resume:   plait run --resume {record.run_id}")
    print("\n".join(lines))
    return 0
