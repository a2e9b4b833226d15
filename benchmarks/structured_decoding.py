"""Structured decoding on the embedded model: llama.cpp's GBNF vs llguidance, with jump-forward.

The same requests go through three paths of ``LocalBackend`` (greedy, one at a time,
each with its prompt already in the prefix cache, as in an agent loop):

- (a) ``structured="gbnf"``: llama.cpp's grammar sampler on the grammar its schema
  converter writes (the former default);
- (b) llguidance token masks, every token sampled (``jump_forward=False``);
- (c) llguidance with jump-forward: the tokens the schema forces are appended
  without sampling.

Requests: one-argument and multi-argument tool calls, planner plans (LLMCompiler's
JSON plan over two tools) and the first ``--cases`` cases of each function-calling
category of the Berkeley Function Calling Leaderboard (BFCL v4, Apache-2.0), read
from ``--bfcl`` (default ``../shared/data/bfcl`` next to the project, when present).

A reply is valid when it parses and validates (jsonschema) against the request's
envelope schema, which holds every offered tool's parameter schema. With
``--json`` one JSON object is printed: ``valid_rate_a/b/c``, ``generation_ratio``
(c/a, first generated token to the reply's end), ``latency_ratio`` (c/a, whole
request), ``sampled_tokens_ratio`` (c/a), ``forced_share_c`` and
``mask_us_per_token`` (grammar work per sampled token on path c) with
``mask_share_of_decode`` (that over the CPU time of one sampled token on path a);
``cpu_ratio`` (c/a, this process's CPU seconds) is the steadier figure on a
machine shared with other work, where wall times of paths run minutes apart vary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema

from plait import ChatRequest, ToolSpec
from plait.backends import LocalBackend
from plait.backends.local import _guidance
from plait.backends.local._tool_calls import envelope_schema
from plait.errors import ConfigError, ModelOutputError
from plait.graphs.compiler._prompts import planner_request
from plait.tools import calculator

PATHS = {"a": ("gbnf", True), "b": ("llguidance", False), "c": ("llguidance", True)}
_DEFAULT_BFCL = Path(__file__).resolve().parents[2] / "shared" / "data" / "bfcl"
_BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array"}

WEATHER = ToolSpec(
    name="get_weather",
    description="Get the current weather for a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
FLIGHTS = ToolSpec(
    name="search_flights",
    description="Find flights between two airports on a date.",
    parameters={
        "type": "object",
        "properties": {
            "origin": {"type": "string", "description": "IATA code"},
            "destination": {"type": "string", "description": "IATA code"},
            "date": {"type": "string", "description": "YYYY-MM-DD"},
            "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
            "nonstop": {"type": "boolean"},
        },
        "required": ["origin", "destination", "date", "passengers"],
    },
)
SEARCH = ToolSpec(
    name="search",
    description="Search the web and return the top result.",
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string", "maxLength": 80}},
        "required": ["query"],
    },
)


def _tool_case(name: str, prompt: str, tools: tuple[ToolSpec, ...]) -> dict[str, Any]:
    request = ChatRequest.from_prompt(
        prompt, tools=tools, tool_choice="required", temperature=0.0, max_tokens=160
    )
    return {"name": name, "kind": "tool_call", "request": request}


def builtin_cases() -> list[dict[str, Any]]:
    calc = calculator.spec
    cases = [
        _tool_case("calc_17x23", "What is 17 * 23?", (calc,)),
        _tool_case("weather_paris", "What is the weather in Paris right now?", (WEATHER,)),
        _tool_case(
            "flights",
            "Find a nonstop flight from SFO to JFK on 2025-03-14 for 2 passengers.",
            (FLIGHTS,),
        ),
        _tool_case("pick_of_three", "How warm is it in Oslo?", (calc, SEARCH, WEATHER)),
    ]
    tools = {t.name: t for t in (calc, SEARCH)}
    for n, question in enumerate(
        [
            "What is the population of France divided by 3?",
            "Search for the tallest building, then compute its height in feet times 2.",
            "Compute 2**10, 3**5 and 7*8, then add them up.",
        ]
    ):
        request = planner_request(tools, question, (), plan_format="json", max_tasks=4)
        cases.append({"name": f"plan_{n}", "kind": "plan", "request": request})
    return cases


def _bfcl_schema(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _bfcl_schema(v) for k, v in node.items() if k != "optional"}
        kind = out.get("type")
        if kind == "any":
            del out["type"]
        elif isinstance(kind, str):
            out["type"] = _BFCL_TYPES.get(kind, kind)
        return out
    if isinstance(node, list):
        return [_bfcl_schema(v) for v in node]
    return node


def bfcl_cases(folder: Path, per_category: int) -> list[dict[str, Any]]:
    cases = []
    for category in ("simple_python", "multiple"):
        path = folder / f"BFCL_v4_{category}.json"
        for line in path.read_text().splitlines()[:per_category]:
            case = json.loads(line)
            tools = tuple(
                ToolSpec(
                    name=f["name"],
                    description=f.get("description", ""),
                    parameters=_bfcl_schema(f["parameters"]),
                )
                for f in case["function"]
            )
            turn = case["question"][0]
            request = ChatRequest.from_prompt(
                turn[-1]["content"], tools=tools, tool_choice="required", temperature=0.0,
                max_tokens=200,
            )  # fmt: skip
            cases.append({"name": case["id"], "kind": f"bfcl_{category}", "request": request})
    return cases


def valid(case: dict[str, Any], completion: Any) -> bool:
    request: ChatRequest = case["request"]
    if case["kind"] == "plan":
        value = json.loads(completion.text)
        schema = request.response_schema
    else:
        calls = [{"name": c.name, "arguments": c.parsed_arguments()} for c in completion.tool_calls]
        value, schema = {"tool_calls": calls}, envelope_schema(request)
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


def run_path(
    backend: LocalBackend, case: dict[str, Any]
) -> tuple[bool, float, float, float, int, int, float, str]:
    """(valid, latency_s, cpu_s, generation_s, sampled, forced, mask_s, error) of one request."""
    started, cpu = time.perf_counter(), time.process_time()
    try:
        completion = backend.complete_sync(case["request"])
    except (ModelOutputError, ConfigError, json.JSONDecodeError) as e:
        stats = backend.stats().recent[-1]
        latency, cpu = time.perf_counter() - started, time.process_time() - cpu
        return (
            False, latency, cpu, latency, stats.sampled_tokens, stats.forced_tokens, 0.0, str(e)
        )  # fmt: skip
    latency, cpu = time.perf_counter() - started, time.process_time() - cpu
    stats = backend.stats().recent[-1]
    first = completion.timings.first_token_s or 0.0
    try:
        ok = valid(case, completion)
    except json.JSONDecodeError:
        ok = False
    generation = completion.timings.total_s - first
    return ok, latency, cpu, generation, stats.sampled_tokens, stats.forced_tokens, stats.mask_s, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cases", type=int, default=20, help="BFCL cases per category")
    parser.add_argument("--bfcl", type=Path, default=_DEFAULT_BFCL, help="BFCL data folder")
    parser.add_argument("--verbose", action="store_true", help="one line per request on stderr")
    parser.add_argument(
        "--paths", default="a,b,c", help="which paths to run (a always runs: the ratios' base)"
    )
    parser.add_argument(
        "--layout",
        choices=("dumps", "spaced"),
        default="dumps",
        help="llguidance JSON layout: json.dumps's (default) or at most one space between tokens",
    )
    args = parser.parse_args()
    if args.layout == "spaced":
        _guidance._OPTIONS = {"whitespace_flexible": True, "whitespace_pattern": "[ ]?"}
    chosen = {"a", *args.paths.split(",")}

    cases = builtin_cases()
    if args.bfcl.is_dir() and args.cases > 0:
        cases += bfcl_cases(args.bfcl, args.cases)
    backends = {
        key: LocalBackend(n_ctx=4096, structured=mode, jump_forward=jump)  # type: ignore[arg-type]
        for key, (mode, jump) in PATHS.items()
        if key in chosen
    }
    warm = next(iter(backends.values()))
    zero = {"valid": 0, "latency": 0.0, "cpu": 0.0, "gen": 0.0, "sampled": 0, "forced": 0}
    totals = {k: {**zero, "mask": 0.0} for k in backends}
    per_kind: dict[str, dict[str, int]] = {}
    for case in cases:
        # Warm the prefix cache with the prompt, as an agent loop's earlier turns would.
        try:
            warm.complete_sync(case["request"].model_copy(update={"max_tokens": 1}))
        except ModelOutputError:  # one token of an envelope is not a reply; the prompt is cached
            pass
        for key, backend in backends.items():
            ok, latency, cpu, gen, sampled, forced, mask, error = run_path(backend, case)
            t = totals[key]
            t["cpu"] += cpu
            t["valid"] += ok
            t["latency"] += latency
            t["gen"] += gen
            t["sampled"] += sampled
            t["forced"] += forced
            t["mask"] += mask
            kind = per_kind.setdefault(case["kind"], {"n": 0, "a": 0, "b": 0, "c": 0})
            kind[key] += ok
            if args.verbose:
                print(
                    f"{case['name']:>22} {key} ok={ok} {latency:.2f}s cpu={cpu:.2f}s "
                    f"sampled={sampled} forced={forced} {error[:120]}",
                    file=sys.stderr,
                )
        per_kind[case["kind"]]["n"] += 1
    n = len(cases)
    a, c = totals["a"], totals.get("c", totals["a"])
    b = totals.get("b")
    mask_us = 1e6 * c["mask"] / max(c["sampled"], 1)
    # CPU seconds per sampled token of path a: a decode step, free of the waits a
    # shared machine adds to wall time.
    decode_us = 1e6 * a["cpu"] / max(a["sampled"], 1)
    result = {
        "benchmark": "structured_decoding",
        "requests": n,
        "paths": sorted(backends),
        "layout": args.layout,
        "valid_rate_a": round(a["valid"] / n, 3),
        "valid_rate_b": None if b is None else round(b["valid"] / n, 3),
        "valid_rate_c": round(c["valid"] / n, 3),
        "generation_ratio": round(c["gen"] / a["gen"], 3),
        "latency_ratio": round(c["latency"] / a["latency"], 3),
        "cpu_ratio": round(c["cpu"] / a["cpu"], 3),
        "latency_ratio_b": None if b is None else round(b["latency"] / a["latency"], 3),
        "sampled_tokens_ratio_b": None if b is None else round(b["sampled"] / a["sampled"], 3),
        "sampled_tokens_ratio": round(c["sampled"] / max(a["sampled"], 1), 3),
        "forced_share_c": round(c["forced"] / max(c["forced"] + c["sampled"], 1), 3),
        "mask_us_per_token": round(mask_us, 1),
        "mask_share_of_decode": round(mask_us / decode_us, 4),
        "latency_s_per_request": {k: round(t["latency"] / n, 3) for k, t in totals.items()},
        "sampled_per_request": {k: round(t["sampled"] / n, 1) for k, t in totals.items()},
        "valid_by_kind": per_kind,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
