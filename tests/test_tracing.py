"""Tracing: OpenTelemetry spans (in-memory exporter) and the JSONL run trace."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from plait import tracing
from plait._secrets import Redactor
from plait.agents import Agent, AgentLimits
from plait.backends.routing import CostLedger, Price, RuleRouter
from plait.backends.testing import FunctionBackend, ScriptedBackend
from plait.completions import Completion, Usage
from plait.errors import ConfigError
from plait.graphs import EagerExecutor, LLMCompiler, Plan, Task, task_runner
from plait.messages import ToolCall
from plait.tools import tool


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool
def boom(x: int) -> int:
    """Always fails."""
    raise ValueError(f"no {x}")


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.configure(tracer_provider=provider)
    yield memory
    tracing.disable()


def _by_name(spans: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for s in spans:
        found.setdefault(s.name, []).append(s)
    return found


def _plan() -> Plan:
    return Plan(
        tasks=(
            Task(id="1", tool="add", args={"a": 1, "b": 2}),
            Task(id="2", tool="add", args={"a": 10, "b": 20}),
            Task(id="3", tool="add", args={"a": "$1", "b": "$2"}),
            Task(id="4", tool="boom", args={"x": 1}),
            Task(id="5", tool="add", args={"a": "$4", "b": 1}),
        )
    )


def test_off_by_default_hands_out_a_shared_noop() -> None:
    assert not tracing.enabled()
    first, second = tracing.span("a"), tracing.span("b")
    assert first is second  # nothing allocated per call
    with first as s:
        s.set("x", 1)
        s.add_event("e")
    assert tracing.start_span("x") is None
    assert tracing.current_span() is None


async def test_executor_run_exports_a_span_per_task_under_the_run(
    exporter: InMemorySpanExporter,
) -> None:
    _, runner = task_runner([add, boom])
    result = await EagerExecutor(runner).run(_plan(), run_id="r1")
    assert result.outcomes["3"].result == 33
    spans = _by_name(exporter.get_finished_spans())
    (run,) = spans["plait.execute"]
    tasks = {s.attributes["plait.task.id"]: s for s in spans["plait.task"]}
    assert sorted(tasks) == ["1", "2", "3", "4", "5"]
    for s in tasks.values():
        assert s.parent is not None and s.parent.span_id == run.context.span_id
        assert s.context.trace_id == run.context.trace_id
    assert tasks["3"].attributes["plait.task.dependencies"] == ("1", "2")
    assert tasks["3"].attributes["plait.task.status"] == "done"
    assert tasks["4"].attributes["plait.task.status"] == "failed"
    assert not tasks["4"].status.is_ok
    assert tasks["5"].attributes["plait.task.status"] == "skipped"
    # Dependants start after their dependencies end.
    assert tasks["3"].start_time >= max(tasks["1"].end_time, tasks["2"].end_time)
    assert run.attributes["plait.ok"] is False and run.attributes["plait.tasks"] == 5


async def test_agent_run_nests_model_and_tool_spans_with_genai_attributes(
    exporter: InMemorySpanExporter,
) -> None:
    cheap = ScriptedBackend(
        [
            ToolCall(id="c1", name="add", arguments={"a": 2, "b": 3}),
            Completion(
                text="The sum is 5.",
                usage=Usage(prompt_tokens=40, cached_prompt_tokens=30, completion_tokens=4),
                model="scripted-1",
            ),
        ],
        name="cheap",
    )
    ledger = CostLedger(prices={"cheap": Price(prompt_per_1k=1.0, completion_per_1k=2.0)})
    router = RuleRouter([], default=cheap, ledger=ledger)
    agent = Agent("adder", "Add numbers with the tool.", router, tools=[add])
    result = await agent.arun("What is 2 + 3?")
    assert result.output == "The sum is 5."

    spans = _by_name(exporter.get_finished_spans())
    (agent_span,) = spans["invoke_agent adder"]
    chats = sorted(spans["chat rules"], key=lambda s: s.start_time)
    (tool_span,) = spans["execute_tool add"]
    assert len(chats) == 2
    for child in (*chats, tool_span):
        assert child.parent is not None and child.parent.span_id == agent_span.context.span_id
    first, last = chats
    assert first.attributes["gen_ai.operation.name"] == "chat"
    assert first.attributes["gen_ai.request.model"] == "rules"
    assert first.attributes["plait.tool_calls"] == ("add",)
    assert last.attributes["gen_ai.usage.input_tokens"] == 40
    assert last.attributes["gen_ai.usage.output_tokens"] == 4
    assert last.attributes["plait.usage.cached_input_tokens"] == 30
    assert last.attributes["gen_ai.response.model"] == "scripted-1"
    assert last.attributes["plait.route.backend"] == "cheap"
    assert last.attributes["plait.cost"] == pytest.approx(0.04 + 0.008)
    (route,) = [e for e in last.events if e.name == "plait.route"]
    assert route.attributes["plait.route.router"] == "rules"
    assert tool_span.attributes["gen_ai.tool.name"] == "add"
    assert tool_span.attributes["gen_ai.tool.call.id"] == "c1"
    assert tool_span.attributes["gen_ai.tool.call.result"] == "5"
    assert json.loads(tool_span.attributes["gen_ai.tool.call.arguments"]) == {"a": 2, "b": 3}
    assert agent_span.attributes["gen_ai.agent.name"] == "adder"
    assert agent_span.attributes["plait.agent.stop_reason"] == "done"


async def test_compiler_model_calls_carry_the_same_chat_attributes_as_an_agents(
    exporter: InMemorySpanExporter,
) -> None:
    # Every layer builds chat spans from one set of attributes, so a report reads
    # the planner and the joiner exactly as it reads an agent's model turns.
    plan = json.dumps({"tasks": [{"tool": "add", "args": {"a": 1, "b": 2}}]})
    join = Completion(
        text=json.dumps({"action": "finish", "answer": "3"}),
        usage=Usage(prompt_tokens=50, cached_prompt_tokens=20, completion_tokens=9),
        model="joiner-1",
    )
    model = ScriptedBackend([plan, join], name="m")
    specs, runner = task_runner([add])
    compiler = LLMCompiler(model, specs, runner)
    assert (await compiler.arun("What is 1 + 2?")).answer == "3"
    await Agent("adder", "Add.", ScriptedBackend(["3"], name="m"), temperature=0.2).arun("1 + 2?")

    spans = _by_name(exporter.get_finished_spans())
    (plan_span,) = spans["plait.plan"]
    (join_span,) = spans["plait.join"]
    (agent_chat,) = spans["chat m"]
    start_keys = {
        "gen_ai.operation.name",
        "gen_ai.request.model",
        "gen_ai.agent.name",
        "gen_ai.request.max_tokens",
        "gen_ai.request.temperature",
        "gen_ai.input.messages",
        "plait.backend",
    }
    response_keys = {
        "gen_ai.response.model",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "plait.usage.cached_input_tokens",
        "gen_ai.output.messages",
    }
    assert start_keys | response_keys <= set(agent_chat.attributes)
    assert start_keys | response_keys <= set(join_span.attributes)
    assert start_keys <= set(plan_span.attributes)
    assert plan_span.attributes["gen_ai.agent.name"] == "planner"
    assert plan_span.attributes["plait.plan.tools"] == ("add",)
    assert join_span.attributes["gen_ai.agent.name"] == "joiner"
    assert join_span.attributes["gen_ai.request.model"] == "m"
    assert join_span.attributes["gen_ai.response.model"] == "joiner-1"
    assert join_span.attributes["gen_ai.usage.input_tokens"] == 50
    assert join_span.attributes["plait.usage.cached_input_tokens"] == 20
    assert join_span.attributes["gen_ai.request.temperature"] == 0.0


async def test_a_timeout_mid_turn_is_recorded_as_a_timeout(tmp_path: Any) -> None:
    # The run's stop signal is private to the agent loop: a model call cut off by
    # the time limit says "timeout" in the trace, never the signal's class name.
    async def slow(request: Any) -> str:
        await asyncio.sleep(5)
        return "too late"

    agent = Agent("s", "Think.", FunctionBackend(slow), limits=AgentLimits(timeout_s=0.05))
    with tracing.record_run(tmp_path, "t1"):
        result = await agent.arun("Anything?")
    assert result.stop_reason == "timeout"
    records = {r["name"]: r for r in tracing.read_trace(tmp_path / "trace.jsonl")}
    chat = records["chat function"]
    assert chat["status"] == "error" and chat["attributes"]["error.type"] == "timeout"
    assert "time limit" in chat["error"]
    assert records["invoke_agent s"]["attributes"]["plait.agent.stop_reason"] == "timeout"
    assert "LimitReached" not in (tmp_path / "trace.jsonl").read_text()


async def test_agent_task_in_a_plan_nests_under_its_task(
    exporter: InMemorySpanExporter,
) -> None:
    agent = Agent("writer", "Write.", ScriptedBackend(["a poem"]))
    _, runner = task_runner([add], agents=[agent])
    plan = Plan(tasks=(Task(id="1", tool="writer", args={"task": "a poem please"}),))
    await EagerExecutor(runner).run(plan)
    spans = _by_name(exporter.get_finished_spans())
    (task,) = spans["plait.task"]
    (agent_span,) = spans["invoke_agent writer"]
    assert agent_span.parent is not None and agent_span.parent.span_id == task.context.span_id


async def test_redaction_hides_prompts_and_tool_contents(tmp_path: Any) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.configure(tracer_provider=provider, redact=True)
    try:
        backend = ScriptedBackend([ToolCall(name="add", arguments={"a": 1, "b": 1}), "secret 2"])
        with tracing.record_run(tmp_path, "r2"):
            await Agent("a", "Add.", backend, tools=[add]).arun("my secret question")
    finally:
        tracing.disable()
    text = (tmp_path / "trace.jsonl").read_text()
    assert "secret" not in text and tracing.REDACTED in text
    for s in memory.get_finished_spans():
        assert not any("secret" in str(v) for v in s.attributes.values())


async def test_a_runs_secrets_are_hidden_from_opentelemetry_too(
    tmp_path: Any, exporter: InMemorySpanExporter
) -> None:
    # The run's redaction used to reach trace.jsonl only: the same spans went to
    # the OpenTelemetry exporter with the secret in prompts, tool arguments,
    # events and the error status.
    secret = "sk-live-0123456789"
    redactor = Redactor([secret])

    @tool
    def leak(token: str) -> str:
        """Fails, quoting its argument."""
        raise ValueError(f"bad token {token}")

    backend = ScriptedBackend([ToolCall(name="leak", arguments={"token": secret}), "done"])
    with tracing.record_run(tmp_path, "r-secret", redact=redactor.data):
        with tracing.span("outer", {"plait.note": f"key={secret}"}) as outer:
            outer.add_event("seen", {"value": secret})
            await Agent("a", f"Use {secret}.", backend, tools=[leak]).arun(f"token {secret}")
            outer.fail(f"failed with {secret}")
    exported = exporter.get_finished_spans()
    assert exported and (tmp_path / "trace.jsonl").exists()
    assert secret in str(backend.requests[0].messages)  # the model itself did see it
    for s in exported:
        shown = [str(v) for v in s.attributes.values()]
        shown += [str(e.name) + str(dict(e.attributes or {})) for e in s.events]
        shown.append(str(s.status.description))
        assert not any(secret in text for text in shown), s.name
    (outer_span,) = _by_name(exported)["outer"]
    assert outer_span.attributes["plait.note"] == "key=***"
    assert secret not in (tmp_path / "trace.jsonl").read_text()
    # Outside the recorded run nothing is rewritten.
    with tracing.span("after", {"plait.note": secret}):
        pass
    assert _by_name(exporter.get_finished_spans())["after"][0].attributes["plait.note"] == secret


async def test_run_trace_jsonl_without_opentelemetry(tmp_path: Any) -> None:
    _, runner = task_runner([add, boom])
    with tracing.record_run(tmp_path, "r3", {"plait.workflow": "demo.yaml"}):
        await EagerExecutor(runner).run(_plan(), run_id="r3")
    records = tracing.read_trace(tmp_path / "trace.jsonl")
    names = [r["name"] for r in records]
    assert names.count("plait.task") == 5 and names[-1] == "plait.run"
    by_id = {r["span_id"]: r for r in records}
    run = records[-1]
    assert run["parent_id"] is None and run["attributes"]["plait.workflow"] == "demo.yaml"
    for r in records[:-1]:
        # Every span reaches the root by parent links and shares its trace id.
        node = r
        while node["parent_id"] is not None:
            node = by_id[node["parent_id"]]
        assert node is run and r["trace_id"] == run["trace_id"]
    failed = [r for r in records if r["attributes"].get("plait.task.status") == "failed"]
    assert failed[0]["status"] == "error" and "no 1" in failed[0]["error"]
    # Outside the block nothing is recorded any more.
    assert not tracing.enabled()


async def test_concurrent_runs_write_to_their_own_files(tmp_path: Any) -> None:
    _, runner = task_runner([add])

    async def one(name: str) -> None:
        with tracing.record_run(tmp_path / name, name):
            plan = Plan(tasks=(Task(id="1", tool="add", args={"a": 1, "b": 1}),))
            await EagerExecutor(runner).run(plan, run_id=name)

    await asyncio.gather(one("x"), one("y"))
    for name in ("x", "y"):
        records = tracing.read_trace(tmp_path / name / "trace.jsonl")
        # A plan's tool task goes through the tool pipeline: its execute_tool span.
        names = [r["name"] for r in records]
        assert names == ["execute_tool add", "plait.task", "plait.execute", "plait.run"]
        assert records[0]["parent_id"] == records[1]["span_id"]
        assert records[-1]["attributes"]["plait.run_id"] == name


def test_read_trace_errors_and_torn_lines(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="no trace"):
        tracing.read_trace(tmp_path / "missing.jsonl")
    path = tmp_path / "trace.jsonl"
    path.write_text('{"name": "a"}\n{"name": "b", "tru')
    assert tracing.read_trace(path) == [{"name": "a"}]


def test_span_failure_is_recorded_and_propagates(tmp_path: Any) -> None:
    with tracing.record_to(tmp_path / "t.jsonl"):
        with pytest.raises(KeyError):
            with tracing.span("outer"):
                raise KeyError("k")
    (record,) = tracing.read_trace(tmp_path / "t.jsonl")
    assert record["status"] == "error" and record["error"] == "KeyError: 'k'"


def test_spans_made_elsewhere_join_the_trace_under_their_remote_parent(tmp_path):
    assert tracing.remote_parent() is None  # nothing records here: nothing to send back
    with tracing.record_run(tmp_path, "r-remote"):
        with tracing.span("plait.task", {"plait.task.id": "t"}) as task:
            parent = tracing.remote_parent()
            assert parent == {"trace_id": task.trace_id, "span_id": task.span_id}
            # What a worker process does: its spans are collected, not written here.
            with tracing.collect_under(parent) as collected:
                with tracing.span("plait.worker"):
                    with tracing.span("execute_tool add"):
                        pass
            assert [r["name"] for r in collected.records] == ["execute_tool add", "plait.worker"]
            tracing.replay(collected.records)  # back in the driver
    records = tracing.read_trace(tmp_path / "trace.jsonl")
    by_name = {r["name"]: r for r in records}
    assert by_name["plait.worker"]["parent_id"] == by_name["plait.task"]["span_id"]
    assert by_name["execute_tool add"]["parent_id"] == by_name["plait.worker"]["span_id"]
    assert {r["trace_id"] for r in records} == {by_name["plait.run"]["trace_id"]}
