"""Live progress of a workflow run on stderr: tasks, parallelism, tokens and cost."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """Prints one line per task event and model call, and a summary at the end.

    Args:
        stream: where to print (stderr, so stdout carries only the answer).
        quiet: print only the summary.
        redact: applied to every line (the workflow's secrets hidden).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        quiet: bool = False,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.stream = stream
        self.quiet = quiet
        self.redact = redact
        self.running: dict[str, str] = {}
        self.most_parallel = 0
        self.finished = 0
        self.failed = 0
        self.restored = 0
        self.prompt = self.cached = self.generated = 0
        self.cost = 0.0
        self.started = time.perf_counter()

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(self.redact(text), file=self.stream, flush=True)

    def begin(self, run_id: str, kind: str, file: str, *, resumed: bool) -> None:
        verb = "resuming" if resumed else "run"
        self._say(f"{verb} {run_id}: {kind} workflow {file}")

    def event(self, event: Any) -> None:
        """``on_event`` of :meth:`plait.graphs.Workflow.arun`."""
        from plait.agents import TeamDecision
        from plait.graphs import ModelCall

        if isinstance(event, ModelCall):
            usage = event.usage
            self.prompt += usage.prompt_tokens
            self.cached += usage.cached_prompt_tokens
            self.generated += usage.completion_tokens
            self.cost += event.cost
            who = event.agent or "model"
            self._say(
                f"  [{who} on {event.backend}] {usage.prompt_tokens} prompt tokens "
                f"({usage.cached_prompt_tokens} cached), {usage.generated_text()}"
                + (f", cost {event.cost:.6f}" if event.cost else "")
            )
            return
        if isinstance(event, TeamDecision):
            on = f" on {event.backend}" if event.backend else ""
            detail = event.detail if len(event.detail) <= 100 else event.detail[:97] + "..."
            self._say(f"  * [{event.by}] {event.kind} {event.subject}{on}: {detail}")
            return
        name = f"{event.task_id} {event.tool}"
        if event.kind == "started":
            self.running[event.task_id] = event.tool
            self.most_parallel = max(self.most_parallel, len(self.running))
            alongside = sorted(set(self.running) - {event.task_id})
            also = f" (in parallel with {', '.join(alongside)})" if alongside else ""
            self._say(f"  > {name} started{also}")
        elif event.kind == "finished":
            self.running.pop(event.task_id, None)
            self.finished += 1
            self._say(f"  + {name} done in {event.duration_s or 0:.2f}s")
        elif event.kind == "failed":
            self.running.pop(event.task_id, None)
            self.failed += 1
            self._say(f"  ! {name} failed: {event.error}")
        elif event.kind == "skipped":
            self._say(f"  - {name} skipped: {event.error}")
        elif event.kind == "restored":
            self.restored += 1
            self._say(f"  = {name} restored from the stored run")
        elif event.kind == "retrying":
            self._say(f"  ~ {name} retrying (attempt {event.attempt}): {event.error}")

    def end(self, result: Any) -> None:
        elapsed = time.perf_counter() - self.started
        restored = f", {self.restored} restored" if self.restored else ""
        failed = f", {self.failed} failed" if self.failed else ""
        print(
            self.redact(
                f"{result.status} in {elapsed:.1f}s: {self.finished} tasks{failed}{restored}, "
                f"at most {self.most_parallel} at once; {self.prompt} prompt tokens "
                f"({self.cached} cached), {self.generated} generated; cost {self.cost:.4f}; "
                f"run {result.run_id}"
            ),
            file=self.stream,
            flush=True,
        )

    def interrupted(self, run_id: str) -> None:
        print(
            "\nplait: interrupted; finished tasks are kept. "
            f"Resume with: plait run --resume {run_id}",
            file=self.stream,
            flush=True,
        )
