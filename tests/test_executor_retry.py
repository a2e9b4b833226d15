"""Typed task outcomes (with their exception) and the executor's retry policy."""

import asyncio
import math
import random

import pytest
from langgraph.errors import GraphInterrupt

from plait.errors import (
    BudgetExceeded,
    ConfigError,
    PlanError,
    ToolArgumentError,
    ToolError,
    ToolPermissionError,
)
from plait.graphs import EagerExecutor, Plan, RunResult, Task, TaskOutcome
from plait.graphs.dag import _attempts
from plait.retry import RetryPolicy

NO_WAIT = RetryPolicy(max_attempts=3, initial_backoff_s=0.0, jitter=0.0)


class Flaky:
    """Raises the queued errors for a task, one per call, then succeeds."""

    def __init__(self, errors=None, sleeps=None):
        self.errors = {k: list(v) for k, v in (errors or {}).items()}
        self.sleeps = {k: list(v) for k, v in (sleeps or {}).items()}
        self.calls: dict[str, int] = {}

    async def __call__(self, task, args):
        self.calls[task.id] = self.calls.get(task.id, 0) + 1
        if self.sleeps.get(task.id):
            await asyncio.sleep(self.sleeps[task.id].pop(0))
        if self.errors.get(task.id):
            raise self.errors[task.id].pop(0)
        return f"{task.id}:ok"


def T(id, **kw):
    return Task(id=id, tool="t", **kw)


async def test_outcomes_are_typed_and_keep_the_exception():
    boom = ToolError("quota exceeded")
    result = await EagerExecutor(Flaky({"1": [boom]})).run(
        Plan(tasks=(T("1"), T("2", depends_on=("1",)), T("3")))
    )
    failed, skipped, done = (result.outcomes[i] for i in ("1", "2", "3"))
    assert all(isinstance(o, TaskOutcome) for o in result.outcomes.values())
    assert failed.status == "failed" and failed.exception is boom
    assert failed.error == "ToolError: quota exceeded"  # the text the joiner and traces see
    assert skipped.status == "skipped" and skipped.exception is None
    assert done.status == "done" and done.exception is None and done.result == "3:ok"
    with pytest.raises(RuntimeError) as raised:
        raise RuntimeError("step 1 failed") from failed.exception
    assert raised.value.__cause__ is boom


async def test_the_exception_is_not_serialized():
    result = await EagerExecutor(Flaky({"1": [ToolError("no")]})).run(Plan(tasks=(T("1"),)))
    dumped = result.model_dump(mode="json")
    assert "exception" not in dumped["outcomes"]["1"]
    assert "exception" not in result.model_dump_json()
    back = RunResult.model_validate_json(result.model_dump_json())
    assert back.outcomes["1"].error == "ToolError: no" and back.outcomes["1"].exception is None
    schema = RunResult.model_json_schema()
    assert "exception" not in schema["$defs"]["TaskOutcome"]["properties"]


async def test_a_run_error_is_retried_until_it_succeeds():
    tools = Flaky({"1": [ToolError("busy"), ToolError("busy")]})
    events = []
    result = await EagerExecutor(tools, retry=NO_WAIT, on_event=events.append).run(
        Plan(tasks=(T("1"),))
    )
    assert result.outcomes["1"].status == "done" and result.outcomes["1"].attempts == 3
    retrying = [e for e in events if e.kind == "retrying"]
    assert [(e.attempt, e.error) for e in retrying] == [(n, "ToolError: busy") for n in (2, 3)]


async def test_a_timed_out_attempt_is_retried():
    tools = Flaky(sleeps={"1": [30.0]})  # the first attempt hangs, the second is quick
    result = await EagerExecutor(tools, retry=NO_WAIT).run(Plan(tasks=(T("1", timeout_s=0.05),)))
    assert result.outcomes["1"].status == "done" and result.outcomes["1"].attempts == 2


async def test_a_last_timeout_keeps_its_text_and_exception():
    tools = Flaky(sleeps={"1": [30.0, 30.0]})
    policy = RetryPolicy(max_attempts=2, initial_backoff_s=0.0)
    result = await EagerExecutor(tools, retry=policy).run(Plan(tasks=(T("1", timeout_s=0.05),)))
    outcome = result.outcomes["1"]
    assert outcome.error == "timed out after 0.05s" and outcome.attempts == 2
    assert isinstance(outcome.exception, TimeoutError)


async def test_a_timeout_error_from_the_tool_itself_fails_the_task():
    # No time limit is set; before, formatting the missing limit crashed the whole run.
    tools = Flaky({"1": [TimeoutError("upstream took too long")] * 3})
    result = await EagerExecutor(tools, retries=1).run(Plan(tasks=(T("1"), T("2"))))
    assert result.outcomes["1"].error == "TimeoutError: upstream took too long"
    assert result.outcomes["1"].attempts == 2  # a timeout is retried
    assert result.outcomes["2"].status == "done"


@pytest.mark.parametrize(
    "error",
    [ConfigError("no such model"), PlanError("bad reference", task_id="1")],
    ids=["ConfigError", "PlanError"],
)
async def test_usage_errors_are_never_retried(error):
    tools = Flaky({"1": [error] * 5})
    # Even a policy asking for every exception does not retry a usage error.
    policy = RetryPolicy(max_attempts=5, initial_backoff_s=0.0, retry_on=Exception)
    events = []
    result = await EagerExecutor(tools, retry=policy, on_event=events.append).run(
        Plan(tasks=(T("1"),))
    )
    outcome = result.outcomes["1"]
    assert outcome.status == "failed" and outcome.attempts == 1 and tools.calls["1"] == 1
    assert outcome.error == f"{type(error).__name__}: {error}" and outcome.exception is error
    assert not [e for e in events if e.kind == "retrying"]


async def test_errors_outside_run_error_are_not_retried_by_default():
    tools = Flaky({"1": [ValueError("bad input")] * 3})
    result = await EagerExecutor(tools, retries=2).run(Plan(tasks=(T("1"),)))
    assert result.outcomes["1"].attempts == 1 and tools.calls["1"] == 1
    assert result.outcomes["1"].error == "ValueError: bad input"


@pytest.mark.parametrize(
    "error",
    [
        BudgetExceeded("the run's budget of $0.10 is spent"),
        ToolArgumentError("calculator", "expression: required"),
        ToolPermissionError("write_file is not allowed for this agent"),
    ],
    ids=["BudgetExceeded", "ToolArgumentError", "ToolPermissionError"],
)
async def test_failures_that_repeat_on_every_attempt_are_not_retried_by_default(error):
    tools = Flaky({"1": [error] * 3, "2": [ToolError("network hiccup")]})
    result = await EagerExecutor(tools, retry=NO_WAIT).run(Plan(tasks=(T("1"), T("2"))))
    assert result.outcomes["1"].status == "failed" and tools.calls["1"] == 1
    assert result.outcomes["2"].status == "done" and tools.calls["2"] == 2


async def test_retry_on_predicate_chooses_what_is_retried():
    policy = RetryPolicy(
        max_attempts=4, initial_backoff_s=0.0, retry_on=lambda e: "transient" in str(e)
    )
    tools = Flaky({"1": [ToolError("transient")] * 2, "2": [ToolError("permanent")] * 2})
    result = await EagerExecutor(tools, retry=policy).run(Plan(tasks=(T("1"), T("2"))))
    assert result.outcomes["1"].status == "done" and result.outcomes["1"].attempts == 3
    assert result.outcomes["2"].status == "failed" and result.outcomes["2"].attempts == 1


async def test_retry_on_types_may_widen_the_default():
    policy = RetryPolicy(max_attempts=2, initial_backoff_s=0.0, retry_on=(ToolError, ValueError))
    tools = Flaky({"1": [ValueError("once")]})
    result = await EagerExecutor(tools, retry=policy).run(Plan(tasks=(T("1"),)))
    assert result.outcomes["1"].attempts == 2


async def test_control_flow_is_not_retried():
    tools = Flaky({"1": [GraphInterrupt(())] * 3})
    policy = RetryPolicy(max_attempts=3, initial_backoff_s=0.0, retry_on=lambda e: True)
    with pytest.raises(GraphInterrupt):
        await EagerExecutor(tools, retry=policy).run(Plan(tasks=(T("1"),)))
    assert tools.calls["1"] == 1
    assert not policy.should_retry(GraphInterrupt(()))
    assert not policy.should_retry(asyncio.CancelledError())


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(max_attempts=9, initial_backoff_s=1.0, multiplier=3.0, max_backoff_s=5.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 3.0, 5.0, 5.0, 5.0]
    assert policy.backoff(10_000) == 5.0  # no overflow for a huge attempt number
    rng = random.Random(7)
    for n in range(1, 8):
        wait = policy.delay(n, rng)
        assert policy.backoff(n) * (1 - policy.jitter) <= wait <= policy.backoff(n) <= 5.0
    exact = RetryPolicy(initial_backoff_s=1.0, multiplier=3.0, max_backoff_s=5.0, jitter=0.0)
    assert [exact.delay(n) for n in range(1, 4)] == [1.0, 3.0, 5.0]


async def test_the_executor_waits_the_computed_delays(monkeypatch):
    waits = []
    real_sleep = asyncio.sleep

    async def recorded(seconds, *args):
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(_attempts.asyncio, "sleep", recorded)
    policy = RetryPolicy(
        max_attempts=4, initial_backoff_s=0.5, multiplier=4.0, max_backoff_s=3.0, jitter=0.0
    )
    tools = Flaky({"1": [ToolError("busy")] * 3})
    result = await EagerExecutor(tools, retry=policy).run(Plan(tasks=(T("1"),)))
    assert result.outcomes["1"].attempts == 4
    assert waits == [0.5, 2.0, 3.0]


def test_retries_options_map_onto_a_policy():
    legacy = EagerExecutor(Flaky(), retries=3, retry_backoff_s=0.1).retry
    assert legacy.max_attempts == 4 and legacy.jitter == 0 and legacy.max_backoff_s == math.inf
    assert [legacy.delay(n) for n in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.4])
    assert EagerExecutor(Flaky()).retry.max_attempts == 1  # default: never retry
    with pytest.raises(ConfigError, match="not both"):
        EagerExecutor(Flaky(), retry=NO_WAIT, retries=1)


async def test_a_task_s_own_retries_replace_the_attempts_of_the_policy():
    tools = Flaky({"1": [ToolError("x")] * 2, "2": [ToolError("y")] * 2})
    plan = Plan(tasks=(T("1", retries=2), T("2", retries=0)))
    result = await EagerExecutor(tools, retry=RetryPolicy(initial_backoff_s=0.0)).run(plan)
    assert result.outcomes["1"].status == "done" and result.outcomes["1"].attempts == 3
    assert result.outcomes["2"].status == "failed" and result.outcomes["2"].attempts == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_backoff_s": -1.0},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"retry_on": int},
        {"retry_on": (ToolError, "ValueError")},
        {"retry_on": "ToolError"},
    ],
)
def test_invalid_policies_are_usage_errors(kwargs):
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)
