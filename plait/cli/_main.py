"""The ``plait`` command line: parser wiring only; command bodies live in sibling modules.

Exit codes: 0 success; 1 the work failed (a :class:`~plait.errors.RunError`, or a
run that ended ``failed``); 2 invalid input (any other plait error: ``ConfigError``
and ``ModelLoadError``, ``PlanError``); 130 interrupted (Ctrl-C); 143 terminated
(SIGTERM, ``plait run``). Anything else is a bug in plait: a one-line "internal
error" message (no traceback unless ``PLAIT_DEBUG=1``) and exit 1; ``SystemExit``
passes through.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from plait.errors import PlaitError, RunError

from ._cache import cache_clear_command, cache_stats_command
from ._mcp import mcp_command
from ._model import ask_command, doctor_command, version_command
from ._new import new_command
from ._runs import runs_list_command, runs_show_command
from ._workflow import graph_command, run_command, schema_command, validate_command

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except RunError as e:
        print(f"plait: failed: {e}", file=sys.stderr)
        return 1
    except PlaitError as e:  # usage errors: everything outside RunError
        print(f"plait: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("plait: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one short message (PLAIT_DEBUG=1 shows the traceback)
        if os.environ.get("PLAIT_DEBUG"):
            raise
        message = " ".join(str(e).split())[:300]
        print(
            f"plait: internal error: {type(e).__name__}: {message} -- this is a bug in plait; "
            "please report it on the project's issue tracker with the command you ran "
            "(set PLAIT_DEBUG=1 to see the traceback)",
            file=sys.stderr,
        )
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plait", description="Multi-agent LLM orchestration.")

    def show_help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(handler=show_help)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = commands.add_parser("run", help="run a YAML workflow (progress on stderr)")
    run.add_argument("file", nargs="?", help="the workflow file")
    run.add_argument(
        "--input", "-i", action="append", metavar="NAME=VALUE", help="a workflow input (repeat)"
    )
    run.add_argument("--json", action="store_true", help="print the whole result as JSON")
    run.add_argument("--resume", metavar="RUN_ID", help="finish an interrupted or failed run")
    run.add_argument("--quiet", "-q", action="store_true", help="only the summary on stderr")
    run.set_defaults(handler=run_command)

    new = commands.add_parser("new", help="scaffold a workflow folder (YAML, tools, README)")
    new.add_argument("name", help="the folder to create (letters, digits, '_', '-')")
    new.set_defaults(handler=new_command)

    validate = commands.add_parser("validate", help="check a workflow file, every problem at once")
    validate.add_argument("file")
    validate.set_defaults(handler=validate_command)

    graph = commands.add_parser("graph", help="a workflow as a Mermaid flowchart")
    graph.add_argument("file")
    graph.add_argument(
        "--output", "-o", type=Path, help="write .mmd, or .svg/.png when mermaid-cli is installed"
    )
    graph.set_defaults(handler=graph_command)

    schema = commands.add_parser("schema", help="JSON Schema of workflow files (for editors)")
    schema.set_defaults(handler=schema_command)

    runs = commands.add_parser("runs", help="past runs under .plait/runs")

    def runs_help(_args: argparse.Namespace) -> int:
        runs.print_help()
        return 2

    runs.set_defaults(handler=runs_help)
    runs_commands = runs.add_subparsers(title="runs commands", metavar="COMMAND")
    runs_list = runs_commands.add_parser("list", help="recent runs, newest first")
    runs_list.add_argument("--limit", type=int, default=20)
    runs_list.add_argument("--json", action="store_true")
    runs_list.set_defaults(handler=runs_list_command)
    runs_show = runs_commands.add_parser("show", help="one run's record")
    runs_show.add_argument("run_id")
    runs_show.add_argument("--json", action="store_true")
    runs_show.add_argument(
        "--html",
        nargs="?",
        const="",
        metavar="PATH",
        help="write a self-contained HTML report (default: the run's report.html)",
    )
    runs_show.set_defaults(handler=runs_show_command)

    cache = commands.add_parser("cache", help="model-call cache files: what they hold, clearing")

    def cache_help(_args: argparse.Namespace) -> int:
        cache.print_help()
        return 2

    cache.set_defaults(handler=cache_help)
    cache_commands = cache.add_subparsers(title="cache commands", metavar="COMMAND")
    target_help = "a cache file, a workflow file or a run id (default: every run's cache)"
    cache_stats = cache_commands.add_parser("stats", help="entries, size, hits and cost saved")
    cache_stats.add_argument("target", nargs="?", help=target_help)
    cache_stats.add_argument("--json", action="store_true")
    cache_stats.set_defaults(handler=cache_stats_command)
    cache_clear = cache_commands.add_parser("clear", help="remove every stored answer")
    cache_clear.add_argument("target", nargs="?", help=target_help)
    cache_clear.set_defaults(handler=cache_clear_command)

    mcp = commands.add_parser(
        "mcp", help="serve a workflow's tools and the workflow itself over MCP (stdio or HTTP)"
    )
    mcp.add_argument("file", help="the workflow file")
    mcp.add_argument("--http", action="store_true", help="streamable HTTP on 127.0.0.1")
    mcp.add_argument("--port", type=int, help="HTTP port (default 8000; 0: any free port)")
    mcp.set_defaults(handler=mcp_command)

    version = commands.add_parser("version", help="print versions")
    version.set_defaults(handler=version_command)

    doctor = commands.add_parser("doctor", help="check the model file, llama.cpp and a model load")
    doctor.add_argument("--model", type=Path, help="GGUF file to check (default: embedded model)")
    doctor.set_defaults(handler=doctor_command)

    ask = commands.add_parser("ask", help="one prompt through a local model, streamed")
    ask.add_argument("prompt")
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--model", type=Path, help="GGUF file (default: embedded model)")
    ask.add_argument("--schema", type=Path, help="JSON Schema file the answer must match")
    ask.add_argument("--max-tokens", type=int, default=256)
    ask.add_argument("--temperature", type=float)
    ask.add_argument("--seed", type=int)
    ask.add_argument("--json", action="store_true", help="print the completion as JSON")
    ask.set_defaults(handler=ask_command)

    serve = commands.add_parser("serve", help="serve workflows over HTTP, with a live web page")
    serve.add_argument("files", nargs="+", metavar="FILE", help="workflow files (served by stem)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-runs", type=int, default=4, help="runs at once; more are queued")
    serve.add_argument(
        "--max-body", type=int, default=1 << 20, metavar="BYTES", help="largest request body"
    )
    serve.set_defaults(handler=_serve)
    evals = commands.add_parser("eval", help="measure a backend on an evaluation")
    evals.set_defaults(handler=show_help)
    eval_commands = evals.add_subparsers(title="evaluations", metavar="EVAL")
    fc = eval_commands.add_parser(
        "function-calling", help="BFCL-format function-calling cases, graded BFCL's way"
    )
    fc.add_argument("--data", type=Path, required=True, help="folder of BFCL_v4_*.json files")
    fc.add_argument("--categories", default="simple_python,multiple")
    fc.add_argument("--limit", type=int, help="first N cases of each category")
    fc.add_argument(
        "--policy",
        choices=["default", "model", "embedding", "hybrid"],
        default="default",
        help="tool selection (default: by backend)",
    )
    fc.add_argument("--backend", default="local", help="'local' or an OpenAI-compatible base URL")
    fc.add_argument("--model", type=Path, help="GGUF file for --backend local")
    fc.add_argument("--model-name", help="model name for a server")
    fc.add_argument("--api-key-env", default=None, help="variable holding the server's API key")
    fc.add_argument("--schema-mode", default="json_schema", choices=["json_schema", "json_object"])
    fc.add_argument("--timeout", type=float, default=120.0)
    fc.add_argument("--n-threads", type=int)
    fc.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    fc.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    fc.set_defaults(handler=_function_calling)

    repl = commands.add_parser("repl", help="interactive session with agents, tools and plans")
    repl.add_argument("file", nargs="?", type=Path, help="workflow file (default: embedded model)")
    repl.set_defaults(handler=_repl)
    return parser


def _function_calling(args: argparse.Namespace) -> int:
    from ._eval import function_calling_command  # agents and evals load only for it

    return function_calling_command(args)


def _serve(args: argparse.Namespace) -> int:
    from .serve import serve_command

    return serve_command(args)


def _repl(args: argparse.Namespace) -> int:
    from .repl import default_session, load_session, run_repl

    return run_repl(load_session(args.file) if args.file else default_session())
