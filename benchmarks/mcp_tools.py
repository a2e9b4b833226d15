"""MCP client overhead: calls to a real MCP server vs the same tool in process (JSON).

The server is ``examples/drone_server.py`` (stdio, the ``mcp`` SDK's server API),
and every call goes through a plait ``ToolRunner`` (argument checks, limits,
tracing hooks) in both cases, so the difference is the MCP round trip.

- start_s: starting the server and listing its tools (one session).
- inprocess_us_per_call / mcp_us_per_call: ``calls`` sequential calls of
  ``drone_sheet``; mcp_overhead_ratio is their ratio.
- concurrent_speedup: the same calls 8 at a time over the one shared session,
  against one at a time (the session multiplexes requests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from plait.messages import ToolCall
from plait.tools import MCPClient, ToolLimits, ToolRunner, tool

SERVER = Path(__file__).resolve().parents[1] / "examples" / "drone_server.py"
SHEETS = SERVER.with_name("drone_docs")


@tool
def drone_sheet(name: str) -> str:
    """The product sheet of one drone."""
    return (SHEETS / f"{name}.txt").read_text().strip()


async def timed(runner: ToolRunner, calls: int, concurrency: int) -> float:
    names = ["falcon", "heron", "kestrel"]
    batch = [ToolCall(name="drone_sheet", arguments={"name": names[i % 3]}) for i in range(calls)]
    started = time.perf_counter()
    for i in range(0, calls, concurrency):
        outcomes = await runner.run_all(batch[i : i + concurrency])
        assert all(o.error is None for o in outcomes), outcomes
    return time.perf_counter() - started


async def measure(calls: int) -> dict[str, Any]:
    local = ToolRunner([drone_sheet], ToolLimits(max_concurrency=8))
    inprocess = await timed(local, calls, 1)
    started = time.perf_counter()
    async with MCPClient([sys.executable, str(SERVER)], name="drones") as client:
        remote = ToolRunner(await client.tools(), ToolLimits(max_concurrency=8))
        start_s = time.perf_counter() - started
        await timed(remote, 10, 1)  # warm-up
        sequential = await timed(remote, calls, 1)
        concurrent = await timed(remote, calls, 8)
    return {
        "calls": calls,
        "start_s": round(start_s, 3),
        "inprocess_us_per_call": round(inprocess / calls * 1e6, 1),
        "mcp_us_per_call": round(sequential / calls * 1e6, 1),
        "mcp_overhead_ratio": round(sequential / inprocess, 1),
        "concurrent_speedup": round(sequential / concurrent, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output form)")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.calls))))


if __name__ == "__main__":
    main()
