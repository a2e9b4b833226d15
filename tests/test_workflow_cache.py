"""``cache:`` in workflow files, and ``plait cache stats|clear``, ``plait runs show``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from plait.backends import CachedBackend, SQLiteCacheStore
from plait.backends.testing import FunctionBackend
from plait.chat import ChatRequest
from plait.cli import main
from plait.completions import Completion, Usage
from plait.errors import BackendUnavailable
from plait.graphs import load_workflow
from plait.messages import ToolCall

PLANNER = """
    cache: {path: shared.sqlite, nondeterministic: true}
    backends:
      brain: {kind: openai, model: m, price: {prompt_per_1k: 1.0, completion_per_1k: 1.0}}
    tools:
      calc: {builtin: calculator}
    agents:
      helper: {instructions: "Answer briefly.", backend: brain, temperature: 0}
    inputs:
      question: {default: "What is 17 * 23?"}
    workflow:
      kind: planner
      question: ${inputs.question}
      backend: brain
      tools: [calc]
      agents: [helper]
      max_replans: 0
    """


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def brain() -> FunctionBackend:
    """Plans a calculator call and a question to the helper, then joins; counts its calls."""

    def answer(request: ChatRequest) -> Completion:
        schema = json.dumps(request.response_schema or {})
        if "action" in schema:
            text = json.dumps({"answer": "17 * 23 is 391.", "action": "finish"})
        elif "tasks" in schema:
            tool = {"tool": "calculator", "args": {"expression": "17 * 23"}}
            ask = {"tool": "helper", "args": {"task": request.messages[-1].content[-40:]}}
            text = json.dumps({"tasks": [tool, ask]})
        else:
            text = "391"
        return Completion(text=text, usage=Usage(prompt_tokens=100, completion_tokens=20))

    return FunctionBackend(answer, name="brain")


async def test_a_rerun_is_answered_from_the_cache_and_a_changed_input_misses(tmp_path):
    model = brain()
    wf = load_workflow(write(tmp_path, PLANNER), backends={"brain": model}, runs_dir=tmp_path / "r")
    first = await wf.arun()
    calls = len(model.requests)
    assert first.ok and first.answer == "17 * 23 is 391." and calls == 3  # plan, helper, join
    assert first.usage.cache_hits == 0 and first.cost > 0

    second = await wf.arun()
    assert second.ok and second.answer == first.answer and second.results == first.results
    assert len(model.requests) == calls  # planner, agent and joiner calls all hit
    assert second.usage.cache_hits == 3 and second.usage.prompt_tokens == 0
    assert second.cost == 0.0 and second.cost_saved == pytest.approx(first.cost)

    changed = await wf.arun({"question": "What is 17 * 24?"})
    assert changed.ok and len(model.requests) > calls
    assert (tmp_path / "shared.sqlite").is_file()  # relative to the workflow file
    await wf.aclose()


STEPS = """
    cache: true
    backends:
      brain: {kind: local, temperature: 0}
    tools:
      calc: {builtin: calculator}
    agents:
      solver: {instructions: "Use the calculator.", backend: brain, tools: [calc]}
    workflow:
      kind: steps
      steps:
        - {id: solve, agent: solver, input: "What is 17 * 23?"}
    """


def test_cache_true_keeps_a_file_in_each_run_folder_that_a_resume_reuses(tmp_path):
    failures = [BackendUnavailable("the server went away")]

    def answer(request: ChatRequest) -> Completion | ToolCall:
        if not any(m.role == "tool" for m in request.messages):
            return ToolCall(name="calculator", arguments={"expression": "17 * 23"})
        if failures:
            raise failures.pop()
        return Completion(text="391")

    model = FunctionBackend(answer, name="brain")
    # Deterministic only by default: the stand-in says it decodes greedily, as the entry does.
    model.cache_identity = lambda: {"backend": "brain", "temperature": 0}  # type: ignore[method-assign]
    wf = load_workflow(write(tmp_path, STEPS), backends={"brain": model}, runs_dir=tmp_path / "r")
    first = wf.run(run_id="one")
    assert not first.ok and len(model.requests) == 2  # the tool call, then the failed answer
    assert (tmp_path / "r" / "one" / "model_cache.sqlite").is_file()
    resumed = wf.run(run_id="one")  # the agent runs again: its first turn is in the file
    assert resumed.ok and resumed.answer == "391"
    assert len(model.requests) == 3 and resumed.usage.cache_hits == 1
    other = wf.run(run_id="two")  # another run keeps another file: nothing to reuse
    assert other.ok and len(model.requests) == 5 and other.usage.cache_hits == 0
    # Outside a run nothing is cached (there is no run folder to keep it in).
    direct = wf.backends["brain"]
    for _ in range(2):
        direct.complete_sync(ChatRequest.from_prompt("hi", temperature=0))
    assert len(model.requests) == 7


def test_runs_show_and_the_report_count_hits_and_the_cost_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))
    model = brain()
    wf = load_workflow(write(tmp_path, PLANNER), backends={"brain": model})
    wf.run()
    second = wf.run()
    assert main(["runs", "show", second.run_id]) == 0
    shown = capsys.readouterr().out
    assert "cache:    3 answered from the cache (" in shown
    assert f"cost saved {second.cost_saved:.4f}" in shown and second.cost_saved > 0
    assert "planner: 1 call(s) (1 from the cache)" in shown  # per agent, from the trace
    assert main(["runs", "show", second.run_id, "--html"]) == 0
    html = (Path(second.run_dir) / "report.html").read_text()
    assert "cache hits" in html and "cost saved" in html


def _filled(path: Path) -> SQLiteCacheStore:
    store = SQLiteCacheStore(path)
    backend = CachedBackend(FunctionBackend(lambda r: "ok", name="m"), store)
    for n in range(3):
        backend.complete_sync(ChatRequest.from_prompt(f"q{n}", temperature=0))
    backend.complete_sync(ChatRequest.from_prompt("q0", temperature=0))
    store.close()
    return store


def test_plait_cache_stats_and_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PLAIT_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "c.sqlite"
    _filled(path)
    assert main(["cache", "stats", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 entries" in out and "1 hit" in out
    assert main(["cache", "stats", str(path), "--json"]) == 0
    (stats,) = json.loads(capsys.readouterr().out)
    assert stats["entries"] == 3 and stats["hits"] == 1
    assert main(["cache", "clear", str(path)]) == 0
    assert "removed 3 entries" in capsys.readouterr().out
    assert SQLiteCacheStore(path).stats().entries == 0

    # A workflow file names its shared cache; with none, every run folder's cache.
    wf_file = write(tmp_path, PLANNER)
    _filled(tmp_path / "shared.sqlite")
    assert main(["cache", "stats", str(wf_file)]) == 0
    assert "3 entries" in capsys.readouterr().out
    _filled(tmp_path / "state" / "runs" / "r1" / "model_cache.sqlite")
    assert main(["cache", "stats"]) == 0
    assert "r1" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 3 entries" in capsys.readouterr().out

    (tmp_path / "bad.sqlite").write_bytes(b"not sqlite" * 50)
    assert main(["cache", "stats", str(tmp_path / "bad.sqlite")]) == 2
    assert "cannot be used" in capsys.readouterr().err
    assert main(["cache", "stats", str(tmp_path / "missing.sqlite")]) == 2
    assert "no model-call cache" in capsys.readouterr().err
