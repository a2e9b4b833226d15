"""Ray scale-out benchmark: CPU-bound fan-out on Ray vs the local executor; prints one JSON object.

32 independent tasks, each a pure-Python CPU loop of about 0.5 s (calibrated
here first). The same plan runs with the local :class:`EagerExecutor` in this
one process (the GIL lets one task compute at a time) and with
:class:`RayExecutor` on a local Ray cluster of 2 worker CPUs, side by side.

- speedup: local wall time / Ray wall time (target >= 1.7 on 2 cores).
- overhead_ms_per_task: Ray wall time beyond perfect use of the workers
  (sum of the tasks' own compute time / workers), per task.
- ray_start_s: starting the local cluster (not part of either run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from plait.graphs import EagerExecutor, Plan, RayExecutor, Task


def spin(n: int) -> int:
    """Pure-Python CPU work: holds the GIL all along."""
    total = 0
    for i in range(n):
        total = (total + i * i) % 1_000_003
    return total


def calibrate(target_s: float) -> int:
    n = 200_000
    while True:
        started = time.perf_counter()
        spin(n)
        elapsed = time.perf_counter() - started
        if elapsed > 0.1:
            return int(n * target_s / elapsed)
        n *= 2


async def cpu_task(task: Task, args: dict[str, Any]) -> float:
    """A tool body: spins, returns its own compute seconds."""
    started = time.perf_counter()
    spin(int(args["n"]))
    return time.perf_counter() - started


async def main(tasks: int, task_s: float, workers: int) -> dict[str, Any]:
    import ray

    n = calibrate(task_s)
    plan = Plan(tasks=tuple(Task(id=str(i), tool="spin", args={"n": n}) for i in range(tasks)))

    started = time.perf_counter()
    local = await EagerExecutor(cpu_task).run(plan)
    local_s = time.perf_counter() - started

    started = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - started
    try:
        executor = RayExecutor(cpu_task)
        # One warm-up task starts the worker processes, as a long-lived cluster would have.
        await executor.run(Plan(tasks=(Task(id="w", tool="spin", args={"n": 1}),)))
        started = time.perf_counter()
        remote = await executor.run(plan)
        ray_s = time.perf_counter() - started
    finally:
        ray.shutdown()
    assert local.ok and remote.ok
    compute_s = sum(remote.results.values())
    return {
        "tasks": tasks,
        "workers": workers,
        "task_s_local_mean": round(sum(local.results.values()) / tasks, 3),
        "task_s_ray_mean": round(compute_s / tasks, 3),
        "local_s": round(local_s, 3),
        "ray_s": round(ray_s, 3),
        "speedup": round(local_s / ray_s, 3),
        "overhead_ms_per_task": round((ray_s - compute_s / workers) / tasks * 1000, 1),
        "ray_start_s": round(ray_start_s, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output form)")
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--task-s", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    print(json.dumps(asyncio.run(main(options.tasks, options.task_s, options.workers))))
