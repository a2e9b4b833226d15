"""A dead server first in a fallback chain: what it costs a three-agent workflow.

The workflow a new user writes: three agents in a steps workflow (an outline, a
draft from it, a title for the draft), each on a router that falls back from an
OpenAI-compatible server nobody runs (``http://127.0.0.1:9/v1``: connects are
refused) to the embedded local model. Beside it, the same workflow with only the
local backend. Each round loads both files afresh (so the dead server's circuit
breaker starts closed, as in a new process), loads and warms each model with one
tiny request (untimed), and runs both, alternating which goes first; greedy
decoding, so the answers match.

- connect_attempts_dead: requests sent to the dead server during one whole run
  (counted at the httpx transport, each one a refused connect; the most of any
  round). Goal: <= 3.
- wall_over_local_only: the run's wall time over the local-only run's (median
  of the rounds). Goal: <= 1.2.
- dead_server_s: seconds those requests took in all (the most of any round):
  what the dead server itself cost the run, free of the machine's load noise.
- same_answers: every round's two answers are equal.

    python benchmarks/fallback.py --json [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from plait import ChatRequest
from plait.backends import LocalBackend, WrappedBackend
from plait.backends.routing import Router
from plait.graphs import load_workflow

DEAD_PORT = 9

AGENTS = """
agents:
  outliner: {{instructions: You list facts in a few words each., backend: {backend},
              max_turn_tokens: 16, temperature: 0}}
  writer: {{instructions: You write two short sentences., backend: {backend},
            max_turn_tokens: 16, temperature: 0}}
  titler: {{instructions: You write a title of at most six words., backend: {backend},
            max_turn_tokens: 8, temperature: 0}}
workflow:
  kind: steps
  steps:
    - {{id: outline, agent: outliner, input: "Three facts about the Moon."}}
    - {{id: draft, agent: writer, input: "Write about the Moon from these facts: ${{outline}}"}}
    - {{id: title, agent: titler, input: "A title for: ${{draft}}"}}
  output: "${{title}}"
"""

FALLBACK = (
    """
name: moon-notes
backends:
  remote: {{kind: openai, model: gpt-4o-mini, base_url: "http://127.0.0.1:{port}/v1"}}
  local: {{kind: local, temperature: 0}}
  chain: {{kind: router, policy: fallback, chain: [remote, local]}}
"""
    + AGENTS
)

LOCAL_ONLY = (
    """
name: moon-notes
backends:
  local: {{kind: local, temperature: 0}}
"""
    + AGENTS
)


def _refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _closed_port() -> int:
    if _refused(DEAD_PORT):
        return DEAD_PORT
    with socket.socket() as s:  # something listens on 9 here: any closed port will do
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DeadServerTally:
    """Requests httpx's async transport sent to the dead port, and the seconds they took."""

    def __init__(self) -> None:
        self.requests = 0
        self.seconds = 0.0


@contextmanager
def counting_requests_to(port: int) -> Iterator[DeadServerTally]:
    """Count every request httpx's async transport sends to ``127.0.0.1:port``."""
    tally = DeadServerTally()
    original = httpx.AsyncHTTPTransport.handle_async_request

    async def counted(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        if request.url.port != port:
            return await original(self, request)
        tally.requests += 1
        started = time.perf_counter()
        try:
            return await original(self, request)
        finally:
            tally.seconds += time.perf_counter() - started

    httpx.AsyncHTTPTransport.handle_async_request = counted  # type: ignore[method-assign]
    try:
        yield tally
    finally:
        httpx.AsyncHTTPTransport.handle_async_request = original  # type: ignore[method-assign]


def _local_model(backend: Any) -> LocalBackend:
    while isinstance(backend, WrappedBackend):
        backend = backend.wrapped
    assert isinstance(backend, LocalBackend), f"expected the local model, got {backend!r}"
    return backend


async def _run(path: Path, runs: Path, tally: DeadServerTally) -> dict[str, Any]:
    workflow = load_workflow(path, runs_dir=runs)
    # Untimed: both runs find their model loaded and warm (the first decode after a
    # load pages the weights in; on a busy machine that alone took a minute).
    model = _local_model(workflow.backends["local"])
    await asyncio.to_thread(model.load)
    await model.complete(ChatRequest.from_prompt("Hi.", max_tokens=2, temperature=0))
    before, before_s = tally.requests, tally.seconds
    started = time.perf_counter()
    result = await workflow.arun()
    took = time.perf_counter() - started
    assert result.ok, result.error
    routers = [b for b in workflow.backends.values() if isinstance(b, Router)]
    decisions = [d for r in routers for d in r.decisions]
    await workflow.aclose()
    return {
        "wall_s": took,
        "answer": result.answer,
        "connect_attempts": tally.requests - before,
        "dead_server_s": tally.seconds - before_s,
        "calls_served_local": sum(d.outcome == "ok" and d.backend != "remote" for d in decisions),
    }


async def measure(folder: Path, rounds: int) -> dict[str, Any]:
    port = _closed_port()
    fallback = folder / "fallback.yaml"
    fallback.write_text(FALLBACK.format(port=port, backend="chain"), encoding="utf-8")
    local_only = folder / "local_only.yaml"
    local_only.write_text(LOCAL_ONLY.format(backend="local"), encoding="utf-8")
    rows = []
    with counting_requests_to(port) as tally:
        for number in range(rounds):
            order = [("fallback", fallback), ("local_only", local_only)]
            if number % 2:
                order.reverse()
            row = {}
            for name, path in order:
                row[name] = await _run(path, folder / "runs", tally)
            rows.append(row)
    ratios = [r["fallback"]["wall_s"] / r["local_only"]["wall_s"] for r in rows]
    return {
        "benchmark": "fallback",
        "dead_server": f"http://127.0.0.1:{port}/v1",
        "rounds": rounds,
        "agents": 3,
        "connect_attempts_dead": max(r["fallback"]["connect_attempts"] for r in rows),
        "connect_attempts_per_round": [r["fallback"]["connect_attempts"] for r in rows],
        "calls_served_local": [r["fallback"]["calls_served_local"] for r in rows],
        "wall_over_local_only": round(statistics.median(ratios), 4),
        "wall_ratios": [round(x, 4) for x in ratios],
        "dead_server_s": round(max(r["fallback"]["dead_server_s"] for r in rows), 4),
        "fallback_s": [round(r["fallback"]["wall_s"], 3) for r in rows],
        "local_only_s": [round(r["local_only"]["wall_s"], 3) for r in rows],
        "same_answers": all(r["fallback"]["answer"] == r["local_only"]["answer"] for r in rows),
        "answer": rows[0]["local_only"]["answer"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON line")
    parser.add_argument("--rounds", type=int, default=6, help="fallback/local-only pairs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plait-fallback-bench-") as tmp:
        figures = asyncio.run(measure(Path(tmp), args.rounds))
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
