"""One loaded workflow, many runs: each run counts its own calls; overrides build routers."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

from plait import ChatRequest, Completion
from plait.backends import Pinnable
from plait.backends.routing import Router
from plait.backends.testing import FunctionBackend, ScriptedBackend
from plait.completions import Usage
from plait.graphs import ModelCall, load_workflow

WRITER = """
agents:
  writer:
    instructions: You write one line.
    backend: {backend}
workflow:
  kind: steps
  steps:
    - id: write
      agent: writer
      input: Write a line.
"""

PRICED = """
backends:
  cloud:
    kind: openai
    model: big
    api_key_env: null
    price: {prompt_per_1k: 2.0, completion_per_1k: 8.0}
""" + WRITER.format(backend="cloud")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


async def test_concurrent_runs_of_one_workflow_each_report_their_own_cost(tmp_path):
    both_asking = asyncio.Barrier(2)

    async def cloud(request: ChatRequest) -> Completion:
        if len(backend.requests) <= 2:
            await both_asking.wait()  # both runs are in flight when either call finishes
        usage = Usage(prompt_tokens=1000, completion_tokens=500)
        return Completion(text="A line.", usage=usage, model="big")

    backend = FunctionBackend(cloud, name="cloud")
    wf = load_workflow(write(tmp_path, PRICED), backends={"cloud": backend}, runs_dir=tmp_path)
    seen: dict[str, list[ModelCall]] = {"a": [], "b": []}
    first, second = await asyncio.gather(
        wf.arun(run_id="a", on_event=lambda e: _calls(e, seen["a"])),
        wf.arun(run_id="b", on_event=lambda e: _calls(e, seen["b"])),
    )
    assert len(backend.requests) == 2
    for result in (first, second):
        assert result.ok and result.answer == "A line."
        assert result.cost == 6.0  # 1000 prompt tokens at 2.0/1k + 500 at 8.0/1k
        assert result.usage.prompt_tokens == 1000 and result.usage.completion_tokens == 500
    assert [c.cost for c in seen["a"]] == [6.0] and [c.cost for c in seen["b"]] == [6.0]
    # A run after them starts from zero again.
    again = await wf.arun(run_id="c")
    assert again.cost == 6.0 and len(backend.requests) == 3


def _calls(event: object, into: list[ModelCall]) -> None:
    if isinstance(event, ModelCall):
        into.append(event)


ROUTED = """
backends:
  cloud:
    kind: openai
    model: big
    api_key_env: null
  spare:
    kind: openai
    model: small
    api_key_env: null
  either:
    kind: router
    policy: fallback
    chain: [cloud, spare]
""" + WRITER.format(backend="either")


async def test_overriding_a_router_member_builds_the_router_over_the_override(tmp_path):
    stand_in = ScriptedBackend(["From the stand-in."], name="cloud")
    wf = load_workflow(write(tmp_path, ROUTED), backends={"cloud": stand_in}, runs_dir=tmp_path)
    router = wf.backends["either"]
    assert isinstance(router, Router)
    result = await wf.arun()
    assert result.ok and result.answer == "From the stand-in."
    stand_in.assert_exhausted()
    decision = router.last_decision
    assert decision is not None and decision.backend == "cloud" and decision.outcome == "ok"


async def test_workflow_meters_keep_a_backend_pinnable(tmp_path):
    class Pinning(ScriptedBackend):
        async def pin(self, prefix: object, *, ttl_s: float | None = None) -> str:
            return "pin"

        async def unpin(self, pinned: object) -> bool:
            return True

    wf = load_workflow(
        write(tmp_path, PRICED),
        backends={"cloud": Pinning([], name="cloud")},
        runs_dir=tmp_path,
    )
    cloud = wf.backends["cloud"]
    assert isinstance(cloud, Pinnable) and await cloud.pin("brief") == "pin"
    assert isinstance(wf.backends["default"], Pinnable)  # the embedded model, behind its meter
    scripted = load_workflow(write(tmp_path, PRICED), backends={"cloud": ScriptedBackend([])})
    assert not isinstance(scripted.backends["cloud"], Pinnable)


CAPPED = """
backends:
  cloud:
    kind: openai
    model: big
    api_key_env: null
    price: {{prompt_per_1k: 2.0, completion_per_1k: 8.0}}
  capped:
    kind: router
    policy: fallback
    chain: [cloud]
    budget: {budget}
agents:
  writer:
    instructions: You write one line.
    backend: capped
workflow:
  kind: steps
  steps:
    - {{id: one, agent: writer, input: Write a line.}}
    - {{id: two, agent: writer, input: "Another after ${{one}}.", depends_on: [one]}}
"""


def _six_each(request: ChatRequest) -> Completion:
    return Completion(text="A line.", usage=Usage(prompt_tokens=1000, completion_tokens=500))


async def test_a_router_budget_caps_each_run_not_every_run_of_the_loaded_file(tmp_path):
    # Each call costs 6.0 (its reservation, the worst case for the agent's
    # max_tokens, is less than 7), so a run's two calls fit a budget of 20;
    # three runs together spend 36.
    cloud = FunctionBackend(_six_each, name="cloud")
    wf = load_workflow(
        write(tmp_path, CAPPED.format(budget=20)), backends={"cloud": cloud}, runs_dir=tmp_path
    )
    results = [await wf.arun() for _ in range(3)]
    assert [(r.ok, r.cost) for r in results] == [(True, 12.0)] * 3
    # Within one run the cap still holds: after 6.0 spent, the second call could pass 7.
    tight = load_workflow(
        write(tmp_path, CAPPED.format(budget=7)), backends={"cloud": cloud}, runs_dir=tmp_path
    )
    refused = await tight.arun()
    assert not refused.ok and refused.cost == 6.0 and "BudgetExceeded" in (refused.error or "")
