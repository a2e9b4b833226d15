"""The local engine's admission order: priority first, aging so nothing starves."""

from __future__ import annotations

from plait.backends.local._admission import admission_order, effective_priority
from plait.backends.local._jobs import Job
from plait.backends.local._sampling import SamplingParams
from plait.chat import ChatRequest
from plait.messages import UserMessage


def _job(priority: int, submitted_at: float) -> Job:
    return Job(
        prompt=[1],
        sampling=SamplingParams(),
        max_tokens=1,
        on_token=lambda _: True,
        on_done=lambda _: None,
        submitted_at=submitted_at,
        priority=priority,
    )


def test_higher_priority_is_admitted_first_and_ties_stay_fifo() -> None:
    low, high, low2, high2 = _job(0, 10.0), _job(5, 10.0), _job(0, 10.0), _job(5, 10.0)
    assert admission_order([low, high, low2, high2], now=10.0) == [high, high2, low, low2]


def test_aging_admits_a_waiting_low_priority_job_within_a_bound() -> None:
    old_low = _job(0, 0.0)
    # Fresh high-priority jobs keep arriving; the low one ranks first once it
    # has waited more than aging_s per level of difference (here 3 * 0.5 s).
    for now in (0.5, 1.0, 1.4):
        assert admission_order([old_low, _job(3, now)], now=now, aging_s=0.5)[0] is not old_low
    assert admission_order([old_low, _job(3, 1.6)], now=1.6, aging_s=0.5)[0] is old_low
    assert effective_priority(old_low, now=1.0, aging_s=0.5) == 2.0


def test_chat_request_priority_defaults_to_neutral() -> None:
    request = ChatRequest(messages=(UserMessage(content="hi"),))
    assert request.priority == 0
    assert ChatRequest(messages=request.messages, priority=3).priority == 3


def test_executor_priorities_follow_depth_to_the_sink() -> None:
    from plait.graphs.dag._plan import Task
    from plait.graphs.dag._priority import critical_path_priorities

    # a -> b -> c -> join and six independent x_i -> join: the chain is deepest.
    tasks = [
        Task(id="a", tool="t"),
        Task(id="b", tool="t", depends_on=("a",)),
        Task(id="c", tool="t", depends_on=("b",)),
        *(Task(id=f"x{i}", tool="t") for i in range(6)),
        Task(id="join", tool="t", depends_on=("c", *(f"x{i}" for i in range(6)))),
    ]
    priorities = critical_path_priorities(tasks)
    assert priorities["join"] == 0
    assert priorities["c"] == 1 and priorities["b"] == 2 and priorities["a"] == 3
    assert {priorities[f"x{i}"] for i in range(6)} == {1}


def test_agent_requests_carry_the_priority_set_around_them() -> None:
    from plait._request_priority import current_request_priority, requesting_priority

    assert current_request_priority() == 0
    with requesting_priority(4):
        assert current_request_priority() == 4
    assert current_request_priority() == 0


async def test_executor_runs_each_task_under_its_critical_path_priority() -> None:
    from plait._request_priority import current_request_priority
    from plait.graphs import EagerExecutor, Plan
    from plait.graphs.dag._plan import Task

    seen: dict[str, int] = {}

    async def runner(task, args):  # what an agent task's model requests would carry
        seen[task.id] = current_request_priority()
        return task.id

    plan = Plan(
        tasks=(
            Task(id="a", tool="t"),
            Task(id="b", tool="t", depends_on=("a",)),
            Task(id="x", tool="t"),
            Task(id="join", tool="t", depends_on=("b", "x")),
        )
    )
    result = await EagerExecutor(runner).run(plan)
    assert result.ok
    assert seen == {"a": 2, "b": 1, "x": 1, "join": 0}


def test_openai_body_carries_priority_only_when_configured() -> None:
    from plait.backends.openai._wire import chat_body

    request = ChatRequest(messages=(UserMessage(content="hi"),), priority=2)
    options = {"model": "m", "stream": False, "schema_mode": "json_schema", "stream_usage": False}
    assert "priority" not in chat_body(request, extra={}, **options)
    assert chat_body(request, extra={}, send_priority=True, **options)["priority"] == 2


async def test_extraction_requests_carry_their_tasks_priority() -> None:
    from plait.agents import extraction_tool
    from plait.backends.testing import FunctionBackend
    from plait.graphs import EagerExecutor, Plan, task_runner
    from plait.graphs.dag._plan import Task
    from plait.tools import Toolset

    model = FunctionBackend(lambda request: '{"value": "Friday"}')
    _, runner = task_runner(Toolset([extraction_tool(model, str)]))
    plan = Plan(
        tasks=(
            Task(id="1", tool="extract", args={"text": "ships Friday", "what": "the day"}),
            Task(id="2", tool="extract", args={"text": "$1", "what": "the day"}),
        )
    )
    result = await EagerExecutor(runner).run(plan)
    assert result.ok
    assert sorted(r.priority for r in model.requests) == [0, 1]  # task 1 gates task 2


async def test_a_routers_judge_asks_at_the_requests_priority() -> None:
    from plait.backends.routing import ModelScorer
    from plait.backends.testing import FunctionBackend

    judge = FunctionBackend(lambda request: '{"difficulty": 2}')
    await ModelScorer(judge).score(
        ChatRequest(messages=(UserMessage(content="hard?"),), priority=4)
    )
    assert [r.priority for r in judge.requests] == [4]
