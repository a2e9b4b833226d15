"""Sync tools on their own thread lane vs asyncio's default executor; prints one JSON object.

- lane_vs_to_thread_per_call: time per sync function call on the ``SYNC_TOOLS``
  lane (where ``Tool.acall`` runs sync tools) divided by the same call through
  ``asyncio.to_thread`` (what tools used before), 2,000 calls, 16 at a time. Near 1
  means the lane costs nothing extra.
- later_calls_with_stuck_tools: with six calls stuck for good on a 6-thread
  default executor (a 2-CPU machine's size), how many of 20 later calls finish
  within 2 s: through the lane (all of them) and through ``to_thread`` (none).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from plait.tools import tool
from plait.tools._threads import SYNC_TOOLS


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: one number.
        b: the other.
    """
    return a + b


async def _timed(calls: int, one) -> float:  # type: ignore[no-untyped-def]
    gate = asyncio.Semaphore(16)

    async def call(i: int) -> None:
        async with gate:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(call(i) for i in range(calls)))
    return (time.perf_counter() - started) / calls


async def _finished_within(deadline_s: float, later: int, one) -> int:  # type: ignore[no-untyped-def]
    done = 0

    async def call(i: int) -> None:
        nonlocal done
        await one(i)
        done += 1

    tasks = [asyncio.ensure_future(call(i)) for i in range(later)]
    await asyncio.wait(tasks, timeout=deadline_s)
    for task in tasks:
        task.cancel()
    return done


async def main() -> dict[str, float | int]:
    loop = asyncio.get_running_loop()
    default = ThreadPoolExecutor(max_workers=6)
    loop.set_default_executor(default)
    calls = 2000
    lane = await _timed(calls, lambda i: SYNC_TOOLS.run(add.fn, a=i, b=1))
    to_thread = await _timed(calls, lambda i: asyncio.to_thread(add.fn, a=i, b=1))
    stuck = threading.Event()

    @tool
    def block() -> None:
        """Block until released."""
        stuck.wait()

    # Six stuck calls on each path: abandoned on the lane, holding the default pool.
    for _ in range(6):
        try:
            async with asyncio.timeout(0.05):
                await block.acall({})
        except TimeoutError:
            pass
        loop.run_in_executor(None, stuck.wait)
    on_lane = await _finished_within(2.0, 20, lambda i: add.acall({"a": i, "b": 1}))
    on_default = await _finished_within(2.0, 20, lambda i: asyncio.to_thread(add.fn, a=i, b=1))
    stuck.set()
    default.shutdown(wait=False)
    return {
        "lane_us_per_call": round(lane * 1e6, 1),
        "to_thread_us_per_call": round(to_thread * 1e6, 1),
        "lane_vs_to_thread_per_call": round(lane / to_thread, 2),
        "later_calls_finished_with_stuck_tools_lane": on_lane,
        "later_calls_finished_with_stuck_tools_to_thread": on_default,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
