"""The REPL's command layer, completion and sessions, on scripted backends.

The terminal itself (prompt, history, Ctrl-C) is driven through a real
pseudo-terminal in ``test_repl_pty.py``.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from plait.agents import Agent, Trace
from plait.backends import LocalBackend
from plait.backends.local import EngineStats
from plait.backends.routing import Price
from plait.backends.testing import FunctionBackend, ScriptedBackend
from plait.cli.repl import (
    ReplCompleter,
    ReplSession,
    Shell,
    candidates,
    default_session,
    load_session,
)
from plait.errors import BackendError, ConfigError, ModelOutputError, PlanError
from plait.graphs import LLMCompiler, Round, task_runner
from plait.memory import ChromaStore, E5Embedder, Memory
from plait.messages import ToolCall
from plait.tools import calculator


def plan_json(*calls: tuple[str, dict]) -> str:
    return json.dumps({"tasks": [{"tool": t, "args": a} for t, a in calls]})


def finish(answer: str) -> str:
    return json.dumps({"answer": answer, "action": "finish"})


def shell_on(session: ReplSession) -> tuple[Shell, io.StringIO]:
    out = io.StringIO()
    return Shell(session, out), out


async def run_lines(shell: Shell, out: io.StringIO, *lines: str) -> str:
    start = out.tell()
    for line in lines:
        assert await shell.handle(line) is True
    return out.getvalue()[start:]


async def test_plain_text_streams_the_answer_and_tool_calls_and_tallies_usage():
    backend = ScriptedBackend(
        [ToolCall(name="calculator", arguments={"expression": "17 * 23"}), "It is 391."]
    )
    shell, out = shell_on(default_session(backend))
    text = await run_lines(shell, out, "what is 17 * 23?")
    assert '[calculator {"expression": "17 * 23"}] -> 391' in text
    assert "It is 391.\n[assistant: " in text
    session = shell.session
    assert session.runs == 1
    assert isinstance(session.last, Trace) and session.last.tool_calls[0].result == "391"
    assert session.usage == session.last.usage and session.usage.completion_tokens == 4
    trace = await run_lines(shell, out, "/trace")
    assert "2 model turn(s), 1 tool call(s)" in trace
    assert "tool calculator" in trace and "-> 391" in trace
    backend.assert_exhausted()


async def test_a_backend_failure_is_one_error_line_and_the_session_goes_on():
    backend = ScriptedBackend([BackendError("server said 503\nretry later"), "Back again."])
    shell, out = shell_on(default_session(backend))
    text = await run_lines(shell, out, "hello", "hello again")
    assert "error: server said 503 retry later\n" in text
    assert "Back again." in text


async def test_unknown_commands_and_agents_get_a_hint_and_change_nothing():
    backend = ScriptedBackend([])
    helper = Agent("helper", "You help.", backend)
    session = default_session(backend)
    session.agents["helper"] = helper
    shell, out = shell_on(session)
    text = await run_lines(shell, out, "/tols", "/use asistant", "/use", "", "   ")
    lines = text.splitlines()
    assert lines[0] == "error: unknown command '/tols' — did you mean '/tools'? (/help lists them)"
    assert lines[1] == (
        "error: unknown agent 'asistant' — did you mean 'assistant'? (agents: assistant, helper)"
    )
    assert lines[2] == "error: /use needs an agent name: assistant, helper"
    assert len(lines) == 3 and session.current == "assistant"
    assert "now talking to helper" in await run_lines(shell, out, "/use helper")
    assert session.agent is helper
    assert "  assistant" in (agents := await run_lines(shell, out, "/agents"))
    assert "* helper  (scripted; no tools)" in agents


async def test_plan_shows_the_dag_and_run_executes_it():
    backend = ScriptedBackend(
        [
            plan_json(
                ("calculator", {"expression": "17 * 23"}),
                ("calculator", {"expression": "4 + 5"}),
                ("calculator", {"expression": "$1"}),
            ),
            finish("The total is 391 and 9."),
        ]
    )
    shell, out = shell_on(default_session(backend))
    shown = await run_lines(shell, out, "/plan what are 17 * 23 and 4 + 5?")
    assert shown.splitlines() == [
        "plan: 3 task(s), up to 2 at once",
        "  1. calculator(expression=17 * 23)",
        "  2. calculator(expression=4 + 5)",
        "    3. calculator(expression=$1)  <- after 1",
        "/run runs it",
    ]
    assert len(backend.requests) == 1  # nothing ran yet: only the planner was asked
    ran = await run_lines(shell, out, "/run")
    assert "  1. calculator -> 391\n  2. calculator -> 9\n  3. calculator -> 391\n" in ran
    assert ran.endswith("The total is 391 and 9.\n")
    session = shell.session
    assert session.pending is None and isinstance(session.last, Round) and session.runs == 1
    trace = await run_lines(shell, out, "/trace")
    assert "planner round" in trace and "3. calculator finished" in trace
    again = await run_lines(shell, out, "/run")
    assert again == "error: no plan to run: write one with /plan QUESTION first\n"
    backend.assert_exhausted()


async def test_a_bad_plan_is_reported_and_nothing_is_pending():
    backend = ScriptedBackend([plan_json(("calc", {"expression": "1"}))])
    shell, out = shell_on(default_session(backend))
    text = await run_lines(shell, out, "/plan what is 1?", "/plan")
    first, second = text.splitlines()
    assert first.startswith("error: the planner's plan is invalid (task 1: unknown tool 'calc')")
    assert second == "error: /plan needs a question, e.g. /plan what is 17 * 23?"
    assert shell.session.pending is None


async def test_tools_lists_and_describes_tools():
    shell, out = shell_on(default_session(ScriptedBackend([])))
    listed = await run_lines(shell, out, "/tools")
    assert listed.startswith("calculator  ")
    described = await run_lines(shell, out, "/tools calculator")
    assert described.startswith("calculator: ") and '"expression"' in described
    wrong = await run_lines(shell, out, "/tools calculater")
    assert wrong == "error: unknown tool 'calculater' — did you mean 'calculator'?\n"


async def test_stats_counts_tokens_and_prices_them():
    backend = ScriptedBackend(["one two three"])
    session = default_session(backend)
    session.prices = {"scripted": Price(prompt_per_1k=1.0, completion_per_1k=2.0)}
    shell, out = shell_on(session)
    before = await run_lines(shell, out, "/stats")
    assert "runs: 0" in before and "cost: 0.000000\n" in before
    await run_lines(shell, out, "count to three")
    stats = await run_lines(shell, out, "/stats")
    usage = session.usage
    assert usage.completion_tokens == 3 and usage.prompt_tokens > 0
    assert f"cost: {(usage.prompt_tokens * 1.0 + 3 * 2.0) / 1000:.6f}" in stats
    assert f"tokens: {usage.prompt_tokens} prompt, 0 cached (0%), 3 generated" in stats
    assert "scripted: no engine counters (not a local backend)" in stats


async def test_memory_searches_the_sessions_memory(tmp_path: Path):
    shell, out = shell_on(default_session(ScriptedBackend([])))
    assert await run_lines(shell, out, "/memory vpn") == (
        "error: this session has no memory (load a workflow that declares one)\n"
    )
    memory = Memory("repl", store=ChromaStore(tmp_path / "mem"), embedder=E5Embedder())
    await memory.remember("Staging deploys need the VPN", source="user", writer="ana")
    await memory.remember("The office closes at six", source="user", writer="ana")
    shell.session.memory = memory
    found = await run_lines(shell, out, "/memory how do I reach staging?")
    first = found.splitlines()[0]
    assert first.startswith("[1] Staging deploys need the VPN  (score ") and "by ana" in first


async def test_load_replaces_the_session_and_reports_bad_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    backend = ScriptedBackend([])
    other = ReplSession(
        agents={"writer": Agent("writer", "You write.", backend)},
        tools=default_session(backend).tools,
        backends={"scripted": backend},
        source="other.yaml",
    )
    loaded: list[Path] = []

    def loader(path: Path) -> ReplSession:
        loaded.append(path)
        return other

    printed = io.StringIO()
    shell = Shell(default_session(backend), printed, loader=loader)
    assert await shell.handle("/load 'other.yaml'")
    assert loaded == [Path("other.yaml")] and shell.session is other
    assert printed.getvalue() == "loaded other.yaml: agents writer\n"
    # Completion follows the new session.
    completer = ReplCompleter(lambda: shell.session)
    names = [c.text for c in completer.get_completions(Document("/use w"), CompleteEvent())]
    assert names == ["writer"]

    with pytest.raises(ConfigError, match="expected a YAML workflow file"):
        load_session(tmp_path / "flow.txt")
    with pytest.raises(ConfigError, match="no such file"):
        load_session(tmp_path / "missing.yaml")
    workflow = tmp_path / "flow.yaml"
    workflow.write_text("agents: {}\n")
    with pytest.raises(ConfigError, match="flow.yaml:1:1"):  # no workflow section
        load_session(workflow)
    # A real workflow file: the session offers its tools, backends and planner.
    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))
    drone = load_session(Path(__file__).resolve().parents[1] / "examples" / "drone_qa.yaml")
    assert "read_file" in drone.tools.names and drone.planner is not None
    assert "small" in drone.backends and list(drone.agents) == ["assistant"]
    shell, out = shell_on(default_session(backend))
    text = await run_lines(shell, out, f"/load {tmp_path / 'missing.yaml'}")
    assert text.startswith("error: cannot load ") and text.endswith("no such file\n")


async def test_backend_describes_the_session():
    shell, out = shell_on(default_session(ScriptedBackend([])))
    text = await run_lines(shell, out, "/backend")
    assert text.splitlines() == [
        "session: default session on scripted",
        "scripted: ScriptedBackend; native tool calls, JSON-schema output",
    ]


async def test_help_lists_every_command_and_quit_ends():
    shell, out = shell_on(default_session(ScriptedBackend([])))
    text = await run_lines(shell, out, "/help")
    for name in shell._handlers:
        assert f"  {name}" in text
    assert "backslash" in text and "Ctrl-C" in text
    assert await shell.handle("/quit") is False


async def test_cancelling_a_line_propagates_and_the_shell_stays_usable():
    started = asyncio.Event()

    async def slow_then_fast(request):
        if "slowly" in request.messages[-1].content:
            started.set()
            await asyncio.sleep(60)
        return "quick answer"

    shell, out = shell_on(default_session(FunctionBackend(slow_then_fast)))
    task = asyncio.ensure_future(shell.handle("answer slowly"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert shell.session.runs == 0
    assert "quick answer" in await run_lines(shell, out, "now")


def test_completion_candidates():
    session = default_session(ScriptedBackend([]))
    assert candidates("/u", session) == ["/use"]
    assert candidates("/t", session) == ["/tools", "/trace"]
    assert candidates("/use a", session) == ["assistant"]
    assert candidates("/tools ca", session) == ["calculator"]
    assert candidates("/plan ca", session) == []
    assert candidates("hello /u", session) == []
    assert candidates("/nope x", session) == []


def test_completion_of_file_paths(tmp_path: Path):
    (tmp_path / "flow.yaml").write_text("")
    completer = ReplCompleter(lambda: default_session(ScriptedBackend([])))
    document = Document(f"/load {tmp_path}/fl")
    completions = list(completer.get_completions(document, CompleteEvent()))
    assert [c.text for c in completions] == ["ow.yaml"]


def test_default_session_builds_without_loading_the_model():
    session = default_session()
    backend = session.agent.backend
    assert isinstance(backend, LocalBackend)
    assert list(session.agents) == ["assistant"] and session.tools.names == ["calculator"]
    assert list(session.backends) == [backend.name]
    assert "calculator" in session.agent.instructions
    assert session.planner is not None
    compiler = session.planner()
    assert compiler.planner is backend and list(compiler.tools) == ["calculator"]


def test_a_session_needs_agents_and_a_known_current_agent():
    with pytest.raises(ConfigError, match="at least one agent"):
        ReplSession(agents={}, tools=default_session(ScriptedBackend([])).tools, backends={})
    backend = ScriptedBackend([])
    agents = {"a": Agent("a", "", backend)}
    with pytest.raises(ConfigError, match="'b' is not one of the agents"):
        ReplSession(agents=agents, tools=agents["a"].tools, backends={}, current="b")


async def test_compiler_plans_for_review_then_executes_the_reviewed_plan():
    specs, runner = task_runner([calculator])
    model = ScriptedBackend([plan_json(("calculator", {"expression": "2 + 3"})), finish("5")])
    compiler = LLMCompiler(model, specs, runner)
    plan, usage = await compiler.aplan("2 + 3?")
    assert [t.args for t in plan.tasks] == [{"expression": "2 + 3"}] and usage.prompt_tokens > 0
    round_ = await compiler.aexecute("2 + 3?", plan)
    assert round_.run.results == {"1": "5"} and round_.answer == "5" and round_.action == "finish"
    assert "2 + 3?" in model.requests[1].messages[-1].content


async def test_compiler_review_with_text_plans_and_bad_plans():
    specs, runner = task_runner([calculator])
    text_model = ScriptedBackend(['1. calculator(expression="6 * 7")\n2. join()\n'])
    compiler = LLMCompiler(text_model, specs, runner, plan_format="text")
    plan, _ = await compiler.aplan("6 * 7?")
    assert [(t.tool, t.args) for t in plan.tasks] == [("calculator", {"expression": "6 * 7"})]
    silent = LLMCompiler(ScriptedBackend(["I cannot plan."]), specs, runner, plan_format="text")
    with pytest.raises(ModelOutputError, match="wrote no task"):
        await silent.aplan("?")
    wrong = LLMCompiler(ScriptedBackend([plan_json(("calculator", {"x": "1"}))]), specs, runner)
    # The model wrote the plan: bad model output, with the PlanError as its cause.
    with pytest.raises(ModelOutputError, match="unknown argument") as caught:
        await wrong.aplan("?")
    assert isinstance(caught.value.__cause__, PlanError)


class _CountedBackend(LocalBackend):
    """A local backend whose engine counters are given (no model is loaded)."""

    def __init__(self, stats: EngineStats) -> None:
        super().__init__()
        self._stats = stats

    def stats(self) -> EngineStats:
        return self._stats


async def test_stats_reads_the_engine_counters_even_when_no_run_finished():
    # A cancelled answer or a failed turn used the engine though no run finished.
    used = EngineStats(
        requests=2,
        prompt_tokens=40,
        reused_tokens=10,
        decode_tokens=7,
        forced_tokens=3,
        drafted_tokens=4,
        accepted_tokens=2,
    )
    shell, out = shell_on(default_session(_CountedBackend(used)))
    stats = await run_lines(shell, out, "/stats")
    assert "runs: 0" in stats
    assert "local:default: 2 requests, KV reuse 10/40 prompt tokens (25%)" in stats
    assert "7 decoded (3 forced, 4 drafted, 2 accepted)" in stats
    shell, out = shell_on(default_session(_CountedBackend(EngineStats())))
    assert "local:default: engine not used yet" in await run_lines(shell, out, "/stats")


def test_the_old_session_name_still_works_with_a_deprecation_warning():
    import plait.cli.repl as repl

    with pytest.warns(DeprecationWarning, match="use plait.cli.repl.ReplSession"):
        assert repl.Session is ReplSession
