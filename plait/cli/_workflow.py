"""``plait run``, ``validate``, ``graph`` and ``schema``: the workflow commands."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from plait.errors import ConfigError

from ._progress import Progress
from ._signals import SignalGuard, exit_if_stuck

__all__ = ["dump_json", "graph_command", "run_command", "schema_command", "validate_command"]


def _inputs(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--input takes NAME=VALUE, got {pair!r}")
        values[name.strip()] = value
    return values


def run_command(args: argparse.Namespace) -> int:
    """Run a workflow file (or resume a run); print the answer on stdout.

    Ctrl-C and SIGTERM end it within seconds, recorded as interrupted (exit 130
    or 143). Secrets the file took from the environment are hidden in all it prints.
    """
    from plait.graphs import new_run_id, read_run, read_workflow

    inputs: dict[str, Any] = _inputs(args.input or [])
    if args.resume:
        record = read_run(args.resume)
        if args.file is not None and Path(args.file) != Path(record.workflow):
            raise ConfigError(
                f"run {record.run_id} ran {record.workflow}, not {args.file}; "
                "leave FILE out to resume it"
            )
        file, run_id = Path(record.workflow), record.run_id
        # Inputs stored as *** held a secret: they come from the file's defaults
        # (the environment) again, or from --input.
        kept = {k: v for k, v in record.inputs.items() if k not in record.redacted_inputs}
        inputs = {**kept, **inputs}
    elif args.file is None:
        raise ConfigError("plait run needs a workflow FILE (or --resume RUN_ID)")
    else:
        file, run_id = Path(args.file), new_run_id()
    # Read and validated once, before agents and LangGraph load: a bad file fails
    # as fast as ``plait validate``; the runner builds what was validated.
    validated = read_workflow(file)
    from plait.graphs import load_workflow

    workflow = load_workflow(validated)
    shown = workflow.redactor
    progress = Progress(sys.stderr, quiet=args.quiet, redact=shown.text)
    progress.begin(run_id, workflow.kind, str(file), resumed=bool(args.resume))
    guard = SignalGuard()
    try:
        result = guard.run(workflow.arun(inputs, run_id=run_id, on_event=progress.event))
    except KeyboardInterrupt:
        progress.interrupted(run_id)
        exit_if_stuck(guard.exit_code)
        return guard.exit_code
    progress.end(result)
    if args.json:
        print(dump_json(shown.data(result.model_dump(mode="json"))))
    elif result.answer is not None:
        answer = shown.data(result.answer)
        print(answer if isinstance(answer, str) else dump_json(answer))
    if not result.ok:
        print(f"plait: failed: run {run_id}: {shown.text(result.error or '')}", file=sys.stderr)
        return 1
    return 0


def dump_json(value: Any) -> str:
    """JSON for people: indented, non-ASCII text as it is (``"São"``, not ``"S\\u00e3o"``)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def validate_command(args: argparse.Namespace) -> int:
    """Check a workflow file; list every problem with its position."""
    from plait.graphs import validate_workflow

    spec = validate_workflow(args.file)
    parts = [
        f"{len(spec.backends)} backends",
        f"{len(spec.tools)} tools",
        f"{len(spec.agents)} agents",
        f"{len(spec.inputs)} inputs",
    ]
    print(f"{args.file}: ok ({spec.workflow.kind} workflow; {', '.join(parts)})")
    executor = getattr(spec.workflow, "executor", "local")
    if executor != "local":
        from plait.graphs.workflows import ray_placement

        address = getattr(executor, "address", None) or "a local cluster"
        workers, driver = ray_placement(spec)
        travelling = f" and agents {', '.join(workers)}" if workers else ""
        print(f"  executor ray ({address}): tool tasks{travelling} run on Ray workers")
        for name, why in driver.items():
            print(f"  on the driver: {name} ({why})")
    return 0


def graph_command(args: argparse.Namespace) -> int:
    """Print the workflow as Mermaid, or render SVG/PNG through mermaid-cli (``mmdc``)."""
    from plait.graphs import validate_workflow

    spec = validate_workflow(args.file)
    text = mermaid(spec)
    if args.output is None:
        print(text)
        return 0
    output = Path(args.output)
    if output.suffix.lower() in (".mmd", ".md", ".txt"):
        output.write_text(text + "\n")
        return 0
    renderer = shutil.which("mmdc")
    if renderer is None:
        raise ConfigError(
            f"rendering {output.suffix or 'an image'} needs mermaid-cli ('mmdc' on PATH, "
            "npm install -g @mermaid-js/mermaid-cli); without it, write .mmd or print Mermaid"
        )
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "graph.mmd"
        source.write_text(text)
        done = subprocess.run(
            [renderer, "-i", str(source), "-o", str(output)], capture_output=True, text=True
        )
    if done.returncode != 0:
        print(f"plait: failed: mmdc: {done.stderr.strip()}", file=sys.stderr)
        return 1
    print(f"wrote {output}")
    return 0


def mermaid(spec: Any) -> str:
    """A Mermaid flowchart of a workflow: its steps, or its planner and what it may call."""
    body = spec.workflow
    lines = ["flowchart TD"]

    def label(text: str) -> str:
        return text.replace('"', "'")

    if body.kind == "steps":
        from plait.graphs.dag import find_references

        for step in body.steps:
            what = f"agent {step.agent}" if step.agent else f"tool {step.tool}"
            lines.append(f'    {step.id}["{label(step.id)}: {label(what)}"]')
        for step in body.steps:
            refs = find_references({"input": step.input, "args": step.args})
            deps = {r for r in refs if not r.startswith("inputs.")} | set(step.depends_on)
            for dep in sorted(deps):
                lines.append(f"    {dep} --> {step.id}")
        return "\n".join(lines)
    if body.kind == "supervisor":
        return "\n".join(lines + _team_lines(body, label))
    lines.append('    question(["question"]) --> planner["planner"]')
    for name in [*body.tools, *body.agents]:
        kind = "agent" if name in body.agents else "tool"
        lines.append(f'    planner -. plans .-> {kind}_{name}["{kind} {label(name)}"]')
        lines.append(f"    {kind}_{name} --> joiner")
    lines.append('    joiner["joiner"] -- replan --> planner')
    lines.append('    joiner --> answer(["answer"])')
    return "\n".join(lines)


def _team_lines(body: Any, label: Any) -> list[str]:
    """A supervisor: the lead, its fixed subtasks (with needs) or what it may hire."""
    lines = [f'    goal(["goal"]) --> lead["supervisor {label(body.name)}"]']
    if body.plan:
        for sub in body.plan:
            who = f"agent {sub.agent}" if sub.agent else (sub.role.name if sub.role else "worker")
            lines.append(f'    {sub.id}["{label(sub.id)}: {label(who)}"]')
            for need in sub.needs:
                lines.append(f"    {need} --> {sub.id}")
            if not sub.needs:
                lines.append(f"    lead -- hires --> {sub.id}")
            lines.append(f"    {sub.id} --> combine")
    else:
        tiers = ", ".join(body.workers) or "lead's backend"
        lines.append(f'    lead -. plans, hires .-> workers["workers on {label(tiers)}"]')
        lines.append("    workers --> combine")
        for name in body.agents:
            lines.append(f'    lead -. delegates .-> agent_{name}["agent {label(name)}"]')
            lines.append(f"    agent_{name} --> combine")
    lines.append('    combine["review, aggregate"] --> answer(["answer"])')
    return lines


def schema_command(_args: argparse.Namespace) -> int:
    """Print the JSON Schema of workflow files."""
    from plait.graphs import workflow_json_schema

    print(dump_json(workflow_json_schema()))
    return 0
