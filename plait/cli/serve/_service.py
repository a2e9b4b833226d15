"""The runs behind ``plait serve``: queueing, events, approvals and cancellation.

A run here is the same durable run as ``plait run``: ``run.json`` and
``results.sqlite`` under ``.plait/runs/<run_id>/``, plus ``events.jsonl``, the
run's event log (what ``GET /runs/{id}/events`` streams). Nothing about a run is
kept only in the server: after a restart every run is listed from its folder, its
past events are read back from its log, and a resumed run restores its finished
tasks from its result store instead of running them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from plait.errors import ConfigError, is_control_flow
from plait.graphs import (
    Approval,
    ModelCall,
    RunRecord,
    Task,
    TaskEvent,
    Workflow,
    list_runs,
    new_run_id,
    read_run,
)

__all__ = [
    "ActiveRun",
    "RunService",
    "ServeError",
    "event_json",
    "frame_event",
    "read_frames",
    "sse_frame",
]

EVENTS_FILE = "events.jsonl"


class ServeError(Exception):
    """A request the service refuses: an HTTP status, a message and where.

    Attributes:
        status: the HTTP status (404, 409, 422, ...).
        message: what was wrong.
        problems: each problem with the request part concerned, as a path
            (``["body", "inputs", "n"]``) and a message.
    """

    def __init__(
        self,
        status: int,
        message: str,
        where: list[str] | None = None,
        *,
        problems: list[tuple[list[str], str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems if problems is not None else [(where or [], message)]


def event_json(event: Any) -> dict[str, Any]:
    """A workflow event (task event, model call, team decision) as a JSON object."""
    if isinstance(event, TaskEvent):
        return {"type": "task", **event.model_dump(mode="json")}
    if isinstance(event, ModelCall):
        usage = event.usage
        return {
            "type": "model_call",
            "backend": event.backend,
            "agent": event.agent,
            "prompt_tokens": usage.prompt_tokens,
            "cached_prompt_tokens": usage.cached_prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "forced_tokens": usage.forced_tokens,
            "drafted_tokens": usage.drafted_tokens,
            "accepted_tokens": usage.accepted_tokens,
            "cost": event.cost,
        }
    dump = getattr(event, "model_dump", None)
    if dump is not None:  # a TeamDecision
        return {"type": "team_decision", **dump(mode="json")}
    return {"type": "other", "text": str(event)}


@dataclass
class PendingApproval:
    """A step waiting for a reviewer, and the future its decision resolves."""

    task_id: str
    tool: str
    args: dict[str, Any]
    decided: asyncio.Future[Approval]


@dataclass
class ActiveRun:
    """A run this server is executing (or has queued): its live state.

    The durable part is on disk; this holds what only makes sense while the
    run's coroutine is alive: the task, the pending approvals, the subscribers.
    ``frames`` are the run's events as server-sent-event frames (index = ``seq``),
    each encoded once when it happens, however many subscribers read it;
    subscribers see the first ``published`` of them, those already in the log.
    """

    run_id: str
    workflow: str
    folder: Path
    frames: list[str] = field(default_factory=list)
    pending: dict[str, PendingApproval] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    finished: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    log: TextIO | None = None
    published: int = 0
    _unwritten: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.published = len(self.frames)  # an earlier attempt's, read from the log

    def emit(self, event: dict[str, Any]) -> None:
        """Log an event (memory, then ``events.jsonl``) and wake the subscribers.

        Events emitted in one turn of the event loop are written together and
        then published (one write and one wake-up, however many there are): a
        subscriber only ever sees events the log already holds, so a server
        killed with SIGKILL loses none it has announced.
        """
        event = {"seq": len(self.frames), "at": time.time(), **event}
        line = json.dumps(event, default=str)
        self.frames.append(sse_frame(event, line))
        self._unwritten.append(line + "\n")
        if len(self._unwritten) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.publish)
            except RuntimeError:  # no event loop (a direct call): write at once
                self.publish()

    def publish(self) -> None:
        """Write the events not yet in the log (one write), then wake the subscribers."""
        if not self._unwritten:
            return
        if self.log is None:
            self.log = (self.folder / EVENTS_FILE).open("a", encoding="utf-8")
        self.log.write("".join(self._unwritten))
        self.log.flush()  # to the operating system: a SIGKILL cannot lose it now
        self._unwritten.clear()
        self.published = len(self.frames)
        self.changed.set()
        self.changed = asyncio.Event()

    def close(self) -> None:
        """The run has ended: publish the last events, wake the subscribers, close the log."""
        self.publish()
        self.finished = True
        self.changed.set()
        if self.log is not None:
            self.log.close()
            self.log = None


def sse_frame(event: dict[str, Any], line: str) -> str:
    """One server-sent event: ``event`` (with ``seq`` and ``type``) encoded as ``line``."""
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {line}\n\n"


def frame_event(frame: str) -> dict[str, Any]:
    """The event a frame of :func:`sse_frame` carries."""
    event: dict[str, Any] = json.loads(frame.split("\ndata: ", 1)[1])
    return event


def read_frames(folder: Path) -> list[str]:
    """A run's logged events as frames (a torn last line, from a killed server, is left out)."""
    path = folder / EVENTS_FILE
    frames: list[str] = []
    if not path.is_file():
        return frames
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            frames.append(sse_frame(json.loads(line), line))
        except (ValueError, KeyError, TypeError):
            continue
    return frames


class RunService:
    """Starts, queues, follows, cancels and resumes runs of the served workflows.

    Args:
        workflows: the served workflows by name.
        runs_dir: where run folders are (every workflow's ``runs_dir``).
        max_concurrent: runs executing at once; further runs wait as ``queued``.
    """

    def __init__(self, workflows: dict[str, Workflow], runs_dir: Path, max_concurrent: int) -> None:
        self.workflows = workflows
        self.runs_dir = runs_dir
        self.max_concurrent = max_concurrent
        self.active: dict[str, ActiveRun] = {}
        self._slots: asyncio.Semaphore | None = None
        self._resolved = {name: w.path.resolve() for name, w in workflows.items()}
        self._names: dict[str, str | None] = {}  # a record's workflow -> served name

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:  # created inside the server's event loop
            self._slots = asyncio.Semaphore(self.max_concurrent)
        return self._slots

    # -- lookups --------------------------------------------------------------

    def workflow_named(self, name: str) -> Workflow:
        if name not in self.workflows:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise ServeError(
                422, f"no workflow {name!r} is served; served: {known}", ["body", "workflow"]
            )
        return self.workflows[name]

    def workflow_of(self, record: RunRecord) -> str | None:
        """The served workflow's name that ran ``record``, if it is served."""
        if record.workflow not in self._names:  # resolved once per file named
            ran = Path(record.workflow).resolve()
            self._names[record.workflow] = next(
                (name for name, path in self._resolved.items() if path == ran), None
            )
        return self._names[record.workflow]

    def record(self, run_id: str) -> RunRecord:
        try:
            return read_run(run_id, self.runs_dir)
        except ConfigError as e:
            raise ServeError(404, str(e), ["path", "run_id"]) from e

    def describe(self, record: RunRecord) -> dict[str, Any]:
        """A run's record with what the server adds: live state, pending approvals."""
        active = self.active.get(record.run_id)
        live = active is not None and not active.finished
        data = record.model_dump(mode="json")
        data["workflow_name"] = self.workflow_of(record)
        data["live"] = live
        data["pending_approvals"] = [
            {"task_id": p.task_id, "tool": p.tool, "args": p.args}
            for p in (active.pending.values() if active is not None else ())
        ]
        data["resumable"] = not live and record.status != "done"
        return data

    def runs(self) -> list[dict[str, Any]]:
        return [self.describe(r) for r in list_runs(self.runs_dir)]

    def events(self, run_id: str) -> tuple[ActiveRun | None, list[str]]:
        """The live run (to follow) or, for a run not live here, its logged events' frames."""
        active = self.active.get(run_id)  # ids this server made: no need to read the record
        if active is not None:
            return active, active.frames
        record = self.record(run_id)
        return None, read_frames(self.runs_dir / record.run_id)

    async def follow(self, run_id: str) -> AsyncIterator[dict[str, Any]]:
        """A run's events from its first: the logged ones, then live ones until it ends."""
        active, past = self.events(run_id)
        if active is None:
            for frame in past:
                yield frame_event(frame)
            return
        sent = 0
        while True:
            waiter = active.changed
            while sent < active.published:
                yield frame_event(active.frames[sent])
                sent += 1
            if active.finished:
                return
            await waiter.wait()

    # -- starting runs -----------------------------------------------------------

    async def submit(
        self, name: str, inputs: dict[str, Any], *, run_id: str | None = None
    ) -> RunRecord:
        """Queue a new run; it starts when a run slot is free.

        Its ``queued`` record is on disk before the id is returned (written in a
        worker thread: a file replace waits on the disk), so an accepted run
        survives a crash of the server. ``run_id`` is the id to use (an A2A
        task's, which was made by :func:`new_run_id` too); default: a new one.
        """
        workflow = self.workflow_named(name)
        problems = workflow.input_problems(inputs)
        if problems:
            raise ServeError(
                422,
                "; ".join(problems.values()),
                problems=[(["body", "inputs", n], m) for n, m in problems.items()],
            )
        values = workflow.resolve_inputs(inputs)
        record = RunRecord(
            run_id=run_id or new_run_id(),
            workflow=str(workflow.path),
            kind=workflow.kind,
            status="queued",
            inputs=values,
            started_at=time.time(),
        )
        await asyncio.to_thread(record.write, self.runs_dir)
        self._start(name, record, resumed=False)
        return record

    def resume(self, run_id: str) -> RunRecord:
        """Run an interrupted, failed or orphaned run again; finished tasks are restored."""
        record = self.record(run_id)
        active = self.active.get(record.run_id)
        if active is not None and not active.finished:
            raise ServeError(409, f"run {run_id} is still running here", ["path", "run_id"])
        if record.status == "done":
            raise ServeError(409, f"run {run_id} is done; nothing to resume", ["path", "run_id"])
        name = self.workflow_of(record)
        if name is None:
            raise ServeError(
                409,
                f"run {run_id} ran {record.workflow}, which this server does not serve",
                ["path", "run_id"],
            )
        self._start(name, record, resumed=True)
        return record

    def requeue_orphans(self) -> list[str]:
        """Queue again the runs a previous server accepted but never started."""
        again = []
        for record in list_runs(self.runs_dir):
            name = self.workflow_of(record)
            if record.status == "queued" and name is not None:
                self._start(name, record, resumed=True)
                again.append(record.run_id)
        return again

    def _start(self, name: str, record: RunRecord, *, resumed: bool) -> None:
        folder = self.runs_dir / record.run_id
        active = ActiveRun(record.run_id, name, folder, frames=read_frames(folder))
        self.active[record.run_id] = active
        active.emit({"type": "run", "status": "queued", "resumed": resumed})
        active.task = asyncio.get_running_loop().create_task(
            self._execute(active, record), name=f"plait-run-{record.run_id}"
        )

    async def _execute(self, active: ActiveRun, record: RunRecord) -> None:
        workflow = self.workflows[active.workflow]

        def on_event(event: Any) -> None:
            active.emit(event_json(event))

        async def approver(task: Task, args: dict[str, Any]) -> Approval:
            decided: asyncio.Future[Approval] = asyncio.get_running_loop().create_future()
            active.pending[task.id] = PendingApproval(task.id, task.tool, args, decided)
            active.emit(
                {
                    "type": "approval",
                    "state": "pending",
                    "task_id": task.id,
                    "tool": task.tool,
                    "args": args,
                }
            )
            try:
                return await decided
            finally:
                active.pending.pop(task.id, None)

        try:
            async with self.slots:
                active.emit({"type": "run", "status": "running"})
                result = await workflow.arun(
                    record.inputs, run_id=record.run_id, on_event=on_event, approver=approver
                )
            if result.answer is not None:
                active.emit({"type": "answer", "answer": result.answer})
            active.emit({"type": "run", "status": result.status, "error": result.error})
        except BaseException as e:
            status = "interrupted" if is_control_flow(e) else "failed"
            error = "cancelled" if status == "interrupted" else f"{type(e).__name__}: {e}"
            self._mark_unstarted(record.run_id, status, error)
            active.emit({"type": "run", "status": status, "error": error})
            if not isinstance(e, Exception):
                raise  # cancellation and the like go on up
        finally:
            active.close()
            if self.active.get(active.run_id) is active:
                del self.active[active.run_id]  # the log on disk serves from now on

    def _mark_unstarted(self, run_id: str, status: str, error: str) -> None:
        """A run stopped before the workflow wrote its record: say so in ``run.json``."""
        with contextlib.suppress(ConfigError):
            record = read_run(run_id, self.runs_dir)
            if record.status == "queued":
                record.model_copy(
                    update={"status": status, "error": error, "finished_at": time.time()}
                ).write(self.runs_dir)

    # -- steering runs ---------------------------------------------------------

    def decide(self, run_id: str, task_id: str, decision: Approval) -> None:
        """Answer a pending approval."""
        self.record(run_id)
        active = self.active.get(run_id)
        pending = active.pending.get(task_id) if active is not None else None
        if active is None or pending is None:
            waiting = ", ".join(active.pending) if active is not None and active.pending else None
            hint = f"; awaiting: {waiting}" if waiting else "; no step of it awaits approval"
            raise ServeError(
                404,
                f"run {run_id} has no step {task_id!r} awaiting approval{hint}",
                ["path", "task"],
            )
        if not pending.decided.done():
            pending.decided.set_result(decision)
        active.emit(
            {
                "type": "approval",
                "state": "decided",
                "task_id": task_id,
                **decision.model_dump(mode="json"),
            }
        )

    def cancel(self, run_id: str) -> None:
        """Stop a live run; it is recorded ``interrupted`` and can be resumed."""
        self.record(run_id)
        active = self.active.get(run_id)
        if active is None or active.finished or active.task is None:
            raise ServeError(409, f"run {run_id} is not running here", ["path", "run_id"])
        active.task.cancel()

    async def shutdown(self) -> None:
        """Cancel every live run (each is recorded ``interrupted``) and wait for them."""
        tasks = [a.task for a in self.active.values() if a.task is not None and not a.finished]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
