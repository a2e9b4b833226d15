"""The model-call cache on a real workflow: a rerun answered without the model.

Runs ``examples/drone_qa.yaml`` (the LLMCompiler planner on the embedded local
model) three times in one process with ``cache: {path: ...}`` added: a first run
that fills the cache, the same run again, and a run with another question. The
model is loaded before the first run, so both timings are of the runs alone.

- model_calls_first / model_calls_second / model_calls_changed: requests the
  model engine served in each run (the engine's own counter, so a call the cache
  answered cannot be miscounted as one it did not); cache_hits_*: calls the cache
  answered (the run's usage).
- same_answer: the second run's answer and task results equal the first's.
- second_over_first: wall time of the second run over the first (goal: <= 0.2).
- changed_input_misses: the other question reached the model (goal: true).

    python benchmarks/cache.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from plait.backends import LocalBackend, WrappedBackend
from plait.graphs import load_workflow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "drone_qa.yaml"
OTHER_QUESTION = "Which drone carries the heaviest payload, the Falcon or the Heron?"


def _engine_of(backend: Any) -> LocalBackend:
    while isinstance(backend, WrappedBackend):
        backend = backend.wrapped
    assert isinstance(backend, LocalBackend), f"expected the local model, got {backend!r}"
    return backend


async def measure(folder: Path) -> dict[str, Any]:
    shutil.copytree(EXAMPLE.parent / "drone_docs", folder / "drone_docs")
    text = EXAMPLE.read_text(encoding="utf-8")
    workflow = folder / EXAMPLE.name
    workflow.write_text(f"{text}\ncache: {{path: model_cache.sqlite}}\n", encoding="utf-8")
    wf = load_workflow(workflow, runs_dir=folder / "runs")
    model = _engine_of(wf.backends["small"])
    await asyncio.to_thread(model.load)  # not timed: both runs find the model loaded

    async def run(inputs: dict[str, Any] | None = None) -> tuple[Any, float, int]:
        before = model.stats().requests
        started = time.perf_counter()
        result = await wf.arun(inputs)
        took = time.perf_counter() - started
        assert result.ok, result.error
        return result, took, model.stats().requests - before

    first, first_s, first_calls = await run()
    second, second_s, second_calls = await run()
    changed, _, changed_calls = await run({"question": OTHER_QUESTION})
    await wf.aclose()
    return {
        "benchmark": "cache",
        "workflow": "examples/drone_qa.yaml",
        "model_calls_first": first_calls,
        "model_calls_second": second_calls,
        "cache_hits_second": second.usage.cache_hits,
        "same_answer": second.answer == first.answer and second.results == first.results,
        "first_s": round(first_s, 3),
        "second_s": round(second_s, 3),
        "second_over_first": round(second_s / first_s, 4),
        "model_calls_changed": changed_calls,
        "cache_hits_changed": changed.usage.cache_hits,
        "changed_input_misses": changed_calls > 0,
        "answer": first.answer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plait-cache-bench-") as tmp:
        figures = asyncio.run(measure(Path(tmp)))
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
