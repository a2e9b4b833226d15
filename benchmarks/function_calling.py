"""Function-calling accuracy on BFCL-format cases, per tool selection policy.

Runs the cases of each category (default: ``simple_python`` and ``multiple``)
through an agent on the embedded model (or an OpenAI-compatible server) once per
policy, grades each reply BFCL's way (``plait.evals``) and prints, with
``--json``, one JSON line per policy and category and then one summary line per
policy::

    {"policy": "hybrid", "backend": "local", "accuracy_simple": ..., "accuracy_multiple": ...,
     "valid_rate": ..., "mean_latency_s": ..., "cases_per_category": ...}

The data folder defaults to ``../shared/data/bfcl`` beside the repository
(override with ``--data``). ``--suite own`` runs the project's own cases
instead (``benchmarks/data/own_tools.jsonl``: tools of the examples, the
built-ins and common APIs; categories ``own_simple`` and ``own_multiple``,
reported as ``accuracy_simple`` and ``accuracy_multiple``). ``--limit N`` runs
the first N cases of each category. The levers: ``--tool-sampling K``
(candidates per call; default: the agent's default for the backend) and
``--repeat-guard off``. Each summary line names them, with the engine's
prefilled and decoded tokens per case (prefix sharing among candidates shows
in the first). ``--server`` starts llama-cpp-python's OpenAI-compatible server on a
loopback port with the same model and measures the remote path through
``OpenAIBackend``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from plait.backends import Backend, LocalBackend, OpenAIBackend, default_model_path
from plait.evals import CaseResult, evaluate, load_case_file, load_cases, result_json
from plait.tools import ToolSelection

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "bfcl"
OWN_CASES = ROOT / "benchmarks" / "data" / "own_tools.jsonl"
SHORT = {
    "simple_python": "simple",
    "multiple": "multiple",
    "own_simple": "simple",
    "own_multiple": "multiple",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(n_ctx: int, n_threads: int | None, chat_format: str) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    command = [
        sys.executable, "-m", "plait.backends.local._llama_server",
        "--model", str(default_model_path()),
        "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx),
        # The chat format that turns `tools` into grammar-constrained calls (the
        # model's own template makes the server answer in text only).
        "--chat_format", chat_format,
    ]  # fmt: skip
    if n_threads is not None:
        command += ["--n_threads", str(n_threads)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise SystemExit(f"llama_cpp.server exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/models", timeout=1.0).is_success:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("llama_cpp.server was not ready within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _progress(total: int, label: str):  # type: ignore[no-untyped-def]
    done = [0, 0]

    def report(result: CaseResult) -> None:
        done[0] += 1
        done[1] += result.ok
        sys.stderr.write(f"\r{label}: {done[0]}/{total} cases, {done[1]} correct ")
        if done[0] == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report


async def _run(args: argparse.Namespace, backend: Backend, backend_label: str) -> list[dict]:
    end = None if args.limit is None else args.skip + args.limit
    if args.suite == "own":
        everything = load_case_file(OWN_CASES)
        cases = []
        for category in dict.fromkeys(c.category for c in everything):
            cases += [c for c in everything if c.category == category][args.skip : end]
    else:
        cases = [
            case
            for category in args.categories.split(",")
            for case in load_cases(args.data, category, limit=end)[args.skip :]
        ]
    summaries = []
    for policy in args.policies.split(","):
        progress = _progress(len(cases), f"{backend_label}/{policy}")

        def on_result(result: CaseResult, progress=progress) -> None:
            if args.details:
                print(result_json(result), file=sys.stderr, flush=True)
            else:
                progress(result)

        selection: ToolSelection | str | None = policy
        if policy == "default":  # what the agent picks for this backend
            selection = None
        elif args.margin is not None and policy == "embedding":
            selection = ToolSelection(policy=policy, margin=args.margin)
        before = backend.stats() if isinstance(backend, LocalBackend) else None
        reports = await evaluate(
            cases,
            backend,
            tool_selection=selection,
            tool_sampling=args.tool_sampling,
            on_result=on_result,
        )
        if args.margin is not None and policy == "embedding":
            policy = f"embedding(margin={args.margin})"
        summary: dict = {
            "policy": policy,
            "backend": backend_label,
            "suite": args.suite,
            "tool_sampling": args.tool_sampling,
            "repeat_guard": args.repeat_guard == "on",
        }
        total = sum(r.cases for r in reports.values())
        for report in reports.values():
            line = {"policy": policy, "backend": backend_label, **report.summary()}
            if args.json:
                print(json.dumps(line), flush=True)
            summary[f"accuracy_{SHORT.get(report.category, report.category)}"] = line["accuracy"]
        summary["valid_rate"] = round(sum(r.valid for r in reports.values()) / total, 4)
        summary["mean_latency_s"] = round(sum(r.latency_s for r in reports.values()) / total, 3)
        summary["cases_per_category"] = {r.category: r.cases for r in reports.values()}
        if before is not None and isinstance(backend, LocalBackend):
            after = backend.stats()
            summary["prefilled_tokens_per_case"] = round(
                (after.prefilled_tokens - before.prefilled_tokens) / total, 1
            )
            summary["decoded_tokens_per_case"] = round(
                (after.decode_tokens - before.decode_tokens) / total, 1
            )
        if args.json:
            print(json.dumps(summary), flush=True)
        else:
            print(summary)
        summaries.append(summary)
    return summaries


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--categories", default="simple_python,multiple")
    parser.add_argument("--policies", default="model,embedding,hybrid,default")
    parser.add_argument("--limit", type=int, default=None, help="first N cases per category")
    parser.add_argument("--skip", type=int, default=0, help="start after N cases per category")
    parser.add_argument("--margin", type=float, default=None, help="the embedding policy's margin")
    parser.add_argument("--server", action="store_true", help="also measure the remote path")
    parser.add_argument("--remote-only", action="store_true")
    parser.add_argument(
        "--remote-policies", default=None, help="policies on the server (default: --policies)"
    )
    parser.add_argument(
        "--chat-format", default="chatml-function-calling", help="the server's --chat_format"
    )
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--suite", choices=("bfcl", "own"), default="bfcl")
    parser.add_argument(
        "--tool-sampling", type=int, default=None, help="candidates per call (default: agent's)"
    )
    parser.add_argument("--repeat-guard", choices=("on", "off"), default="on")
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout")
    parser.add_argument("--details", action="store_true", help="every case as JSON on stderr")
    args = parser.parse_args()
    if not args.remote_only:
        local = LocalBackend(
            n_ctx=args.n_ctx, n_threads=args.n_threads, repeat_guard=args.repeat_guard == "on"
        )
        try:
            await _run(args, local, "local")
        finally:
            await local.aclose()
    if args.server or args.remote_only:
        with _server(args.n_ctx, args.n_threads, args.chat_format) as url:
            remote = OpenAIBackend(
                "smollm2", base_url=url, api_key_env=None, schema_mode="json_object", timeout=300
            )
            if args.remote_policies:
                args.policies = args.remote_policies
            try:
                await _run(args, remote, "openai")
            finally:
                await remote.aclose()


if __name__ == "__main__":
    asyncio.run(main())
