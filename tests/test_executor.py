import asyncio
import dataclasses

import pytest

from plait.errors import ConfigError, PlanError, ToolError
from plait.graphs import (
    EagerExecutor,
    ExecutorConfig,
    MemoryResultStore,
    Plan,
    SQLiteResultStore,
    Task,
    ValidatedPlan,
)
from plait.graphs.dag import parse_plan_stream


class Tools:
    """Task runner whose tools sleep and record what ran (times in seconds)."""

    def __init__(self, delays=None, fail=None, error=RuntimeError):
        self.delays = delays or {}
        self.fail = dict(fail or {})
        self.error = error
        self.calls: list[tuple[str, dict]] = []
        self.running = 0
        self.peak = 0

    async def __call__(self, task, args):
        self.calls.append((task.id, args))
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delays.get(task.id, 0))
            if self.fail.get(task.id, 0) > 0:
                self.fail[task.id] -= 1
                raise self.error(f"{task.id} broke")
            if task.tool == "add":
                return args["a"] + args["b"]
            return f"{task.id}:ok"
        finally:
            self.running -= 1


def T(id, tool="t", **kw):
    return Task(id=id, tool=tool, **kw)


async def test_results_flow_into_dependants():
    tools = Tools()
    plan = Plan(
        tasks=(T("1", "add", args={"a": 1, "b": 2}), T("2", "add", args={"a": "$1", "b": 10}))
    )
    result = await EagerExecutor(tools).run(plan)
    assert result.ok and result.results == {"1": 3, "2": 13}
    assert tools.calls[1] == ("2", {"a": 3, "b": 10})


async def test_fast_branch_does_not_wait_for_slow_branch():
    # 1 (slow) and 2 (fast) are independent; 3 needs only 2.
    tools = Tools({"1": 0.3, "2": 0.01, "3": 0.01})
    plan = Plan(tasks=(T("1"), T("2"), T("3", depends_on=("2",))))
    result = await EagerExecutor(tools).run(plan)
    assert result.outcomes["3"].finished_at < result.outcomes["1"].finished_at


async def test_tasks_start_while_the_plan_is_still_streaming():
    async def slow_plan():
        for line in ["1. t()\n", "2. t()\n", "3. t(x=$1)\n", "join()\n"]:
            yield line
            await asyncio.sleep(0.1)

    events = []
    result = await EagerExecutor(Tools(), on_event=events.append).run(
        parse_plan_stream(slow_plan())
    )
    assert result.ok and set(result.outcomes) == {"1", "2", "3"}
    started_1 = next(e.at for e in events if e.kind == "started" and e.task_id == "1")
    planned_3 = next(e.at for e in events if e.kind == "planned" and e.task_id == "3")
    assert started_1 < planned_3


async def test_failure_skips_dependants_but_not_independent_tasks():
    tools = Tools(fail={"1": 1})
    plan = Plan(tasks=(T("1"), T("2", args={"x": "$1"}), T("3", args={"x": "$2"}), T("4")))
    result = await EagerExecutor(tools).run(plan)
    status = {i: o.status for i, o in result.outcomes.items()}
    assert status == {"1": "failed", "2": "skipped", "3": "skipped", "4": "done"}
    assert result.outcomes["1"].error == "RuntimeError: 1 broke"
    assert result.outcomes["3"].error == "dependency 2 did not succeed"
    assert not result.ok


async def test_continue_on_error_passes_the_error_to_dependants():
    tools = Tools(fail={"1": 1})
    plan = Plan(tasks=(T("1", continue_on_error=True), T("2", args={"x": "$1"})))
    result = await EagerExecutor(tools).run(plan)
    assert result.outcomes["2"].status == "done"
    assert tools.calls[-1] == ("2", {"x": "ERROR: RuntimeError: 1 broke"})


async def test_retry_then_success_and_timeout():
    # A ToolError (a RunError) is retried; a RuntimeError is not (see test_retry.py).
    tools = Tools({"2": 1.0}, fail={"1": 2}, error=ToolError)
    plan = Plan(tasks=(T("1", retries=2), T("2", timeout_s=0.05)))
    events = []
    result = await EagerExecutor(tools, on_event=events.append).run(plan)
    assert result.outcomes["1"].status == "done" and result.outcomes["1"].attempts == 3
    assert [e.kind for e in events if e.task_id == "1"].count("retrying") == 2
    assert result.outcomes["2"].status == "failed"
    assert result.outcomes["2"].error == "timed out after 0.05s"


async def test_concurrency_limits_global_and_per_tool():
    tools = Tools({str(i): 0.02 for i in range(8)})
    plan = Plan(tasks=tuple(T(str(i), "slow" if i < 4 else "t") for i in range(8)))
    await EagerExecutor(tools, max_concurrency=3).run(plan)
    assert tools.peak == 3
    tools = Tools({str(i): 0.02 for i in range(8)})
    ex = EagerExecutor(tools, tool_limits={"slow": 1})
    result = await ex.run(plan)
    slow = sorted((o.started_at, o.finished_at) for i, o in result.outcomes.items() if int(i) < 4)
    assert all(a[1] <= b[0] + 1e-3 for a, b in zip(slow, slow[1:], strict=False))


async def test_approval_gate():
    async def approve(task, args):
        return task.id == "1"

    plan = Plan(tasks=(T("1", requires_approval=True), T("2", requires_approval=True)))
    result = await EagerExecutor(Tools(), approver=approve).run(plan)
    assert result.outcomes["1"].status == "done"
    assert result.outcomes["2"].status == "skipped"
    assert result.outcomes["2"].error == "rejected by the reviewer"


async def test_invalid_static_plan_runs_nothing():
    tools = Tools()
    plan = Plan(tasks=(T("1"), T("2", "nope")))
    with pytest.raises(PlanError, match="task 2: unknown tool 'nope'"):
        await EagerExecutor(tools).run(plan, known_tools={"t"})
    assert tools.calls == []


async def test_invalid_streamed_task_stops_the_run_with_a_plan_error():
    async def bad_plan():
        yield T("1")
        yield T("2", args={"x": "$7"})

    with pytest.raises(PlanError, match="task 2: depends on unknown task"):
        await EagerExecutor(Tools({"1": 5})).run(bad_plan())


async def test_cancelling_a_run_cancels_its_tasks():
    tools = Tools({"1": 10})
    run = asyncio.create_task(EagerExecutor(tools).run(Plan(tasks=(T("1"),))))
    await asyncio.sleep(0.05)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert tools.running == 0


async def test_resume_reuses_stored_results(tmp_path):
    store = SQLiteResultStore(tmp_path / "runs.sqlite")
    tools = Tools(fail={"2": 1})
    plan = Plan(tasks=(T("1", "add", args={"a": 1, "b": 1}), T("2", args={"x": "$1"})))
    first = await EagerExecutor(tools, store=store).run(plan, run_id="r1")
    assert first.outcomes["2"].status == "failed"
    store.close()

    tools.calls.clear()
    reopened = SQLiteResultStore(tmp_path / "runs.sqlite")
    second = await EagerExecutor(tools, store=reopened).resume("r1")
    assert second.ok and second.results == {"1": 2, "2": "2:ok"}
    assert [c[0] for c in tools.calls] == ["2"]
    assert any(e.kind == "restored" and e.task_id == "1" for e in second.events)


async def test_resume_of_unknown_run_is_a_plan_error():
    with pytest.raises(PlanError, match="no stored run with id 'ghost'"):
        await EagerExecutor(Tools(), store=MemoryResultStore()).resume("ghost")


async def test_non_json_results_cannot_be_stored_durably(tmp_path):
    async def runner(task, args):
        return object()

    executor = EagerExecutor(runner, store=SQLiteResultStore(tmp_path / "r.sqlite"))
    result = await executor.run(Plan(tasks=(T("1"), T("2", depends_on=("1",)))))
    assert result.outcomes["1"].status == "failed"
    assert "not JSON-serializable" in result.outcomes["1"].error
    assert result.outcomes["2"].status == "skipped"


class Misconfigured:
    """Task 1 raises a usage error at once; every other task waits until cancelled."""

    def __init__(self, error):
        self.error = error
        self.cancelled: list[str] = []
        self.started: list[str] = []

    async def __call__(self, task, args):
        self.started.append(task.id)
        if task.id == "1":
            await asyncio.sleep(0.01)
            raise self.error
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self.cancelled.append(task.id)
            raise
        return "late"


async def test_a_usage_error_ends_the_run_as_itself_when_the_executor_stops_on_them():
    problem = ConfigError("backend of step 1: no model file")
    runner = Misconfigured(problem)
    plan = Plan(tasks=(T("1"), T("2"), T("3", depends_on=("1",))))
    executor = EagerExecutor(runner, stop_on_usage_error=True, retries=3)
    with pytest.raises(ConfigError) as raised:
        await executor.run(plan)
    assert raised.value is problem  # unchanged, not wrapped in a group
    assert runner.cancelled == ["2"] and "3" not in runner.started
    assert runner.started.count("1") == 1  # a usage error is never retried


async def test_a_usage_error_stops_a_streamed_plan_too():
    problem = PlanError("bad reference", task_id="1")
    runner = Misconfigured(problem)
    more = asyncio.Event()

    async def stream():
        yield T("1")
        yield T("2")
        await more.wait()  # the plan is still streaming when task 1 fails
        yield T("4")

    with pytest.raises(PlanError) as raised:
        await EagerExecutor(runner, stop_on_usage_error=True).run(stream())
    assert raised.value is problem and runner.cancelled == ["2"]


async def test_without_the_flag_a_usage_error_fails_only_its_task():
    runner = Misconfigured(ConfigError("no model file"))
    plan = Plan(tasks=(T("1"), T("3", depends_on=("1",))))
    result = await EagerExecutor(runner).run(plan)
    assert result.outcomes["1"].status == "failed"
    assert result.outcomes["3"].status == "skipped"


def test_the_old_usage_error_stop_is_deprecated():
    from plait.graphs.adapters import UsageErrorStop

    with pytest.warns(DeprecationWarning, match="stop_on_usage_error=True"):
        UsageErrorStop()


async def test_a_validated_plan_is_not_validated_again(monkeypatch):
    checks = []
    real = Plan.validate_against

    def counted(self, known_tools=None, **kwargs):
        checks.append(known_tools)
        return real(self, known_tools, **kwargs)

    plan = Plan(tasks=(T("1"), T("2", args={"x": "$1"})))
    validated = plan.validate_against({"t"})
    assert isinstance(validated, ValidatedPlan) and validated == plan and plan == validated
    assert validated.validate_against() is validated
    monkeypatch.setattr(Plan, "validate_against", counted)
    result = await EagerExecutor(Tools()).run(validated, known_tools={"t", "u"})
    assert result.ok and checks == []
    # A plain plan is checked; so is a validated one run with tools it was not checked for.
    await EagerExecutor(Tools()).run(plan, known_tools=["t"])
    assert checks == [frozenset({"t"})]
    with pytest.raises(PlanError, match="unknown tool 't'"):
        await EagerExecutor(Tools()).run(validated, known_tools={"u"})


def test_the_executor_s_settings_are_one_frozen_config():
    store = MemoryResultStore()
    executor = EagerExecutor(Tools(), max_concurrency=3, tool_limits={"t": 1}, store=store)
    config = executor.config
    assert isinstance(config, ExecutorConfig) and config.store is store
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_concurrency = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.tool_limits["t"] = 5  # type: ignore[index]
    other = MemoryResultStore()
    moved = executor.with_store(other)
    assert moved.store is other and moved.config.max_concurrency == 3 and executor.store is store
    rebuilt = EagerExecutor.from_config(config.with_changes(stop_on_usage_error=True))
    assert rebuilt.config.stop_on_usage_error and rebuilt.config.runner is config.runner
    with pytest.raises(ConfigError, match="max_concurrency must be at least 1"):
        EagerExecutor(Tools(), max_concurrency=0)
