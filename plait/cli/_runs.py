"""``plait runs list`` and ``plait runs show ID``: the records under ``.plait/runs/``."""

from __future__ import annotations

import argparse
import json
import time

__all__ = ["runs_list_command", "runs_show_command"]


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


def _short(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def runs_list_command(args: argparse.Namespace) -> int:
    """One line per run, newest first."""
    from plait.graphs import list_runs

    records = list_runs()[: args.limit]
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return 0
    if not records:
        print("no runs yet (plait run FILE starts one)")
        return 0
    for r in records:
        took = f"{r.finished_at - r.started_at:.1f}s" if r.finished_at else "-"
        shown = _short(r.answer if r.status == "done" else r.error or "")
        print(f"{r.run_id}  {r.status:<11} {took:>7}  {r.workflow}  {shown}")
    return 0


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
        print(record.model_dump_json(indent=2))
        return 0
    usage = record.usage
    lines = [
        f"run {record.run_id}: {record.status}",
        f"  workflow: {record.workflow} ({record.kind})",
        f"  started:  {_when(record.started_at)}   finished: {_when(record.finished_at)}",
        f"  inputs:   {json.dumps(record.inputs)}",
        f"  tokens:   {usage.prompt_tokens} prompt ({usage.cached_prompt_tokens} cached), "
        f"{usage.completion_tokens} generated; cost {record.cost:.4f}",
    ]
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
        shown = answer if isinstance(answer, str) else json.dumps(answer, indent=2)
        lines.append(f"  answer:   {shown}")
        rests = ", ".join(record.untrusted_sources) or "trusted sources only"
        lines.append(f"  rests on: {rests}")
    if record.status in ("interrupted", "failed"):
        lines.append(f"  resume:   plait run --resume {record.run_id}")
    print("\n".join(lines))
    return 0
