"""Idempotency keys: a side effect with a completed key is not performed again."""

import json

from plait.backends.testing import ScriptedBackend, Step
from plait.graphs import (
    EagerExecutor,
    LLMCompiler,
    Plan,
    SQLiteResultStore,
    Task,
    idempotency_keys,
    task_runner,
)
from plait.tools import Toolset, tool


def payment_tools(log_path):
    """A side-effecting tool appending to a log file, keyed by the order it pays."""

    @tool(idempotency_key=lambda args: args["order"])
    def charge(order: str, amount: int) -> str:
        """Charge an order."""
        with open(log_path, "a") as log:
            log.write(json.dumps({"order": order, "amount": amount}) + "\n")
        return f"charged {amount} for {order}"

    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        if key == "missing":
            raise KeyError(key)
        return f"value of {key}"

    return Toolset([charge, lookup])


def charges(log_path):
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines()]


def executor(tools, store=None):
    _, runner = task_runner(tools)
    return EagerExecutor(runner, idempotency=idempotency_keys(tools), store=store)


async def test_two_tasks_with_one_key_charge_once(tmp_path):
    log = tmp_path / "log"
    tools = payment_tools(log)
    plan = Plan(
        tasks=(
            Task(id="1", tool="charge", args={"order": "A7", "amount": 5}),
            Task(id="2", tool="charge", args={"order": "A7", "amount": 5}),
            Task(id="3", tool="charge", args={"order": "B2", "amount": 9}),
        )
    )
    ex = executor(tools)
    result = await ex.run(plan, run_id="pay")
    assert sorted(c["order"] for c in charges(log)) == ["A7", "B2"]  # tasks 1 and 3 run at once
    assert result.results == {
        "1": "charged 5 for A7",
        "2": "charged 5 for A7",
        "3": "charged 9 for B2",
    }
    assert [e.kind for e in result.events].count("deduplicated") == 1


async def test_key_survives_a_new_process_and_a_new_plan(tmp_path):
    log = tmp_path / "log"
    tools = payment_tools(log)
    store_path = tmp_path / "results.sqlite"
    first = executor(tools, SQLiteResultStore(store_path))
    await first.run(
        Plan(tasks=(Task(id="1", tool="charge", args={"order": "A7", "amount": 5}),)),
        run_id="job-1",
        scope="job",
    )
    first.store.close()  # type: ignore[attr-defined]
    # A fresh executor and store (as after a restart) running a different plan
    # (as after a replan): same key in the same scope, so no second charge.
    second = executor(tools, SQLiteResultStore(store_path))
    result = await second.run(
        Plan(tasks=(Task(id="x", tool="charge", args={"order": "A7", "amount": 5}),)),
        run_id="job-2",
        scope="job",
    )
    assert result.results == {"x": "charged 5 for A7"}
    assert len(charges(log)) == 1
    # Another scope is another job: it charges.
    await second.run(
        Plan(tasks=(Task(id="1", tool="charge", args={"order": "A7", "amount": 5}),)),
        run_id="other",
    )
    assert len(charges(log)) == 2


async def test_replanned_round_does_not_repeat_the_side_effect(tmp_path):
    log = tmp_path / "log"
    tools = payment_tools(log)
    specs, runner = task_runner(tools)
    plan_1 = json.dumps(
        {
            "tasks": [
                {"tool": "charge", "args": {"order": "A7", "amount": 5}},
                {"tool": "lookup", "args": {"key": "missing"}},
            ]
        }
    )
    plan_2 = json.dumps(
        {
            "tasks": [
                {"tool": "lookup", "args": {"key": "receipt"}},
                {"tool": "charge", "args": {"order": "A7", "amount": 5}},
            ]
        }
    )
    model = ScriptedBackend(
        [
            Step(plan_1),
            Step(json.dumps({"action": "replan", "answer": "the lookup failed"})),
            Step(plan_2, expect="the lookup failed"),
            Step(json.dumps({"action": "finish", "answer": "paid"}), expect="charged 5 for A7"),
        ]
    )
    compiler = LLMCompiler(
        model, specs, runner, executor=EagerExecutor(runner, idempotency=idempotency_keys(tools))
    )
    result = await compiler.arun("Pay order A7")
    assert result.answer == "paid" and len(result.rounds) == 2
    assert charges(log) == [{"order": "A7", "amount": 5}]
    assert "deduplicated" in [e.kind for e in result.rounds[1].run.events]


async def test_derived_key_and_broken_key_function(tmp_path):
    @tool(idempotency_key=True)
    def send(to: str, body: str) -> str:
        """Send a message."""
        return "sent"

    assert send.key_for({"to": "a", "body": "x"}) == send.key_for({"body": "x", "to": "a"})
    assert send.key_for({"to": "a", "body": "x"}) != send.key_for({"to": "a", "body": "y"})

    @tool(idempotency_key=lambda args: args["missing"])
    def broken(to: str) -> str:
        """Broken key."""
        return "sent"

    ex = executor(Toolset([send, broken]))
    result = await ex.run(Plan(tasks=(Task(id="1", tool="broken", args={"to": "a"}),)))
    assert result.outcomes["1"].status == "failed"
    assert "cannot compute the idempotency key: KeyError" in (result.outcomes["1"].error or "")
