"""``plait eval function-calling``: BFCL-format cases on a backend, graded, as a table and JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from plait.backends import Backend, LocalBackend, OpenAIBackend
from plait.errors import ConfigError
from plait.evals import CaseResult, evaluate, load_cases

__all__ = ["function_calling_command"]


def _backend(args: argparse.Namespace) -> Backend:
    if args.backend == "local":
        return LocalBackend(args.model, n_threads=args.n_threads)
    if args.backend.startswith(("http://", "https://")):
        if not args.model_name:
            raise ConfigError("--backend URL needs --model-name (the model the server serves)")
        return OpenAIBackend(
            args.model_name,
            base_url=args.backend,
            api_key_env=args.api_key_env,
            schema_mode=args.schema_mode,
            timeout=args.timeout,
        )
    raise ConfigError(
        f"--backend must be 'local' or the base URL of an OpenAI-compatible server, "
        f"got {args.backend!r}"
    )


def _bar(total: int) -> Any:
    done = {"n": 0, "ok": 0}

    def report(result: CaseResult) -> None:
        done["n"] += 1
        done["ok"] += result.ok
        filled = int(30 * done["n"] / total) if total else 30
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {done['n']}/{total} ({done['ok']} correct)"
        )
        if done["n"] == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report


async def _evaluate(args: argparse.Namespace) -> list[dict[str, Any]]:
    cases = [
        case
        for category in args.categories.split(",")
        for case in load_cases(args.data, category, limit=args.limit)
    ]
    backend = _backend(args)
    try:
        reports = await evaluate(
            cases,
            backend,
            tool_selection=None if args.policy == "default" else args.policy,
            on_result=None if args.quiet else _bar(len(cases)),
        )
    finally:
        await backend.aclose()
    return [{"policy": args.policy, **r.summary()} for r in reports.values()]


def function_calling_command(args: argparse.Namespace) -> int:
    """Run the cases, print a table (or JSON lines with ``--json``)."""
    rows = asyncio.run(_evaluate(args))
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    columns = ["category", "cases", "accuracy", "valid_rate", "mean_latency_s", "fixed_rate"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))
    return 0
