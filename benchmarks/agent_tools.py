"""Agent runtime benchmark: parallel tool calls and shared-prefix cache hits.

Prints one JSON object:

- ``parallel_speedup``: wall time of one turn with 4 tool calls (each sleeping
  0.1 s) run one at a time, divided by the same turn with concurrency 4.
- ``shared_prefix_cached_ratio``: on the embedded model, the share of the second
  agent's prompt served from the KV cache when two agents share a team context
  placed first in the prompt (shared-part-first layout).
"""

from __future__ import annotations

import asyncio
import json
import time

from plait.agents import Agent
from plait.backends import LocalBackend
from plait.backends.testing import ScriptedBackend
from plait.messages import ToolCall
from plait.tools import ToolLimits, tool


@tool
async def fetch(key: str) -> str:
    """Pretend to fetch something slow."""
    await asyncio.sleep(0.1)
    return key


async def _one_turn(concurrency: int) -> float:
    calls = [ToolCall(name="fetch", arguments={"key": str(i)}) for i in range(4)]
    backend = ScriptedBackend([calls, "done"])
    agent = Agent(
        "b", "Fetch.", backend, tools=[fetch], tool_limits=ToolLimits(max_concurrency=concurrency)
    )
    started = time.perf_counter()
    await agent.arun("go")
    return time.perf_counter() - started


async def _shared_prefix() -> float:
    backend = LocalBackend(n_ctx=2048)
    team = (
        "Team: a travel agency. Customers ask about trips, prices and weather. "
        "Be brief, friendly and precise; never invent prices. " * 3
    )
    writer = Agent("writer", "Write one sentence.", backend, shared_context=team, temperature=0.0)
    critic = Agent("critic", "Criticise in one sentence.", backend, shared_context=team)
    await writer.arun("Describe Rome.")
    result = await critic.arun("Is Rome good in August?")
    usage = result.usage
    return usage.cached_prompt_tokens / usage.prompt_tokens


async def main() -> None:
    sequential = await _one_turn(1)
    parallel = await _one_turn(4)
    cached = await _shared_prefix()
    print(
        json.dumps(
            {
                "benchmark": "agent_tools",
                "sequential_s": round(sequential, 3),
                "parallel_s": round(parallel, 3),
                "parallel_speedup": round(sequential / parallel, 2),
                "shared_prefix_cached_ratio": round(cached, 3),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
