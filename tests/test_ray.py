"""The eager executor on a real local Ray cluster (two worker CPUs)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plait.backends.testing import ScriptedBackend
from plait.errors import ConfigError, ToolError
from plait.graphs import (
    EagerExecutor,
    LLMCompiler,
    Plan,
    RayExecutor,
    SQLiteResultStore,
    Task,
    tool_runner,
)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    # Workers import this module to unpickle its functions: give them its folder.
    here = str(Path(__file__).parent)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",  # loopback only: tests may not leave the machine
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([here, *sys.path])}},
    )
    yield ray
    ray.shutdown()


def pid() -> int:
    return os.getpid()


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def fail(x: int) -> int:
    raise ValueError(f"cannot handle {x}")


def busy(x: int) -> int:
    raise ToolError(f"busy with {x}")


def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


FUNCTIONS = {"pid": pid, "square": square, "add": add, "fail": fail, "busy": busy, "slow": slow}


def _plan() -> Plan:
    return Plan(
        tasks=(
            Task(id="1", tool="square", args={"x": 3}),
            Task(id="2", tool="square", args={"x": 4}),
            Task(id="3", tool="add", args={"a": "$1", "b": "$2"}),
            Task(id="4", tool="fail", args={"x": 7}),
            Task(id="5", tool="add", args={"a": "$4", "b": 1}),
            Task(id="6", tool="fail", args={"x": 1}, continue_on_error=True),
            Task(id="7", tool="add", args={"a": "$3", "b": 0}),
        )
    )


async def test_same_outcomes_as_the_local_executor(cluster: Any) -> None:
    runner = tool_runner(FUNCTIONS)
    local = await EagerExecutor(runner).run(_plan(), run_id="same")
    remote = await RayExecutor(runner).run(_plan(), run_id="same")
    assert remote.results == local.results == {"1": 9, "2": 16, "3": 25, "7": 25}
    for task_id, outcome in local.outcomes.items():
        other = remote.outcomes[task_id]
        assert (other.status, other.error) == (outcome.status, outcome.error)
    assert remote.outcomes["4"].error == "ValueError: cannot handle 7"
    assert remote.outcomes["5"].status == "skipped"


async def test_tasks_run_in_worker_processes(cluster: Any) -> None:
    plan = Plan(tasks=tuple(Task(id=str(i), tool="pid", args={}) for i in range(1, 7)))
    result = await RayExecutor(tool_runner(FUNCTIONS)).run(plan)
    pids = set(result.results.values())
    assert os.getpid() not in pids and len(pids) >= 1


async def test_retries_timeouts_and_durable_results(cluster: Any, tmp_path: Path) -> None:
    store = SQLiteResultStore(tmp_path / "results.sqlite")
    executor = RayExecutor(tool_runner(FUNCTIONS), store=store, retries=1)
    plan = Plan(
        tasks=(
            Task(id="1", tool="square", args={"x": 5}),
            Task(id="2", tool="slow", args={"seconds": 30}, timeout_s=1.0, retries=0),
            Task(id="3", tool="busy", args={"x": 2}),
            Task(id="4", tool="fail", args={"x": 2}),
        )
    )
    result = await executor.run(plan, run_id="durable")
    assert result.outcomes["2"].error == "timed out after 1s"
    assert result.outcomes["3"].attempts == 2  # a ToolError is retried once, by the executor
    assert isinstance(result.outcomes["3"].exception, ToolError)  # brought back from the worker
    assert result.outcomes["4"].attempts == 1  # a ValueError is not a run error: not retried
    tasks, stored = await store.load("durable")
    assert stored == {"1": 25} and [t.id for t in tasks] == ["1", "2", "3", "4"]
    store.close()


async def test_llm_compiler_selects_ray_by_name(cluster: Any) -> None:
    planner = ScriptedBackend(
        [
            '{"tasks": [{"tool": "square", "args": {"x": 6}}]}',
            '{"answer": "36", "action": "finish"}',
        ]
    )
    from plait.chat import ToolSpec

    spec = ToolSpec(
        name="square",
        description="Square a number.",
        parameters={"type": "object", "properties": {"x": {"type": "integer"}}},
    )
    compiler = LLMCompiler(planner, [spec], tool_runner(FUNCTIONS), executor="ray")
    assert isinstance(compiler.executor, RayExecutor)
    result = await compiler.arun("six squared?")
    assert result.answer == "36"
    assert result.rounds[0].run.results == {"1": 36}


def test_unknown_executor_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="executor must be"):
        LLMCompiler(ScriptedBackend([]), [], tool_runner({}), executor="spark")  # type: ignore[arg-type]


async def test_cancelling_a_run_cancels_its_ray_tasks(cluster: Any) -> None:
    # Each task reserves both CPUs: the second can only start once the first is gone.
    greedy = RayExecutor(tool_runner(FUNCTIONS), num_cpus=2)
    plan = Plan(tasks=(Task(id="1", tool="slow", args={"seconds": 120}),))
    run = asyncio.ensure_future(greedy.run(plan))
    await asyncio.sleep(2.0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    async with asyncio.timeout(60):  # a leaked task would hold the CPUs for 120 s
        quick = await greedy.run(Plan(tasks=(Task(id="1", tool="square", args={"x": 2}),)))
    assert quick.results == {"1": 4}


def _echo_pid(request: Any) -> str:
    return f"{os.getpid()}"


async def test_model_pool_routes_shared_prefixes_to_the_same_actor(cluster: Any) -> None:
    from plait.backends.ray import RayModelPool, prefix_key
    from plait.backends.testing import FunctionBackend
    from plait.chat import ChatRequest
    from plait.messages import SystemMessage, UserMessage

    pool = RayModelPool(lambda: FunctionBackend(_echo_pid), replicas=2, num_cpus=0)

    def request(system: str, user: str) -> ChatRequest:
        return ChatRequest(messages=(SystemMessage(content=system), UserMessage(content=user)))

    try:
        systems = [f"Team context number {i}." for i in range(8)]
        routes = {s: pool.route(request(s, "q")) for s in systems}
        assert set(routes.values()) == {0, 1}  # prefixes spread over both actors
        answers: dict[str, set[str]] = {}
        for s in systems:
            for user in ("first question", "second question"):
                completion = await pool.complete(request(s, user))
                answers.setdefault(s, set()).add(completion.text)
        # Same prefix -> same actor process, whatever the rest of the prompt says.
        assert all(len(pids) == 1 for pids in answers.values())
        by_actor = {routes[s]: next(iter(p)) for s, p in answers.items()}
        assert len(set(by_actor.values())) == 2 and os.getpid() not in map(int, by_actor.values())
        counts = await pool.served_counts()
        assert sorted(counts) == sorted(2 * list(routes.values()).count(i) for i in range(2))
        assert prefix_key(request("a", "x")) == prefix_key(request("a", "y"))
    finally:
        await pool.aclose()
