"""The HTTP API of ``plait serve`` (FastAPI): routes, errors, request limits, the token."""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from plait.backends import Backend
from plait.errors import ConfigError
from plait.graphs import Approval, Workflow, load_workflow
from plait.settings import load_settings

from ..report import build_html_report
from ._a2a import add_a2a_routes
from ._page import PAGE
from ._service import ActiveRun, RunService, ServeError

__all__ = ["RunRequest", "create_app"]

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
KEEPALIVE_S = 15.0


class RunRequest(BaseModel):
    """``POST /runs``: which served workflow, with which inputs."""

    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(description="a served workflow's name (GET /workflows lists them)")
    inputs: dict[str, Any] = Field(default_factory=dict, description="input name -> value")


def _error(status: int, message: str, problems: Sequence[tuple[Sequence[Any], str]]) -> Any:
    return JSONResponse(
        {"error": message, "detail": [{"loc": list(loc), "msg": msg} for loc, msg in problems]},
        status_code=status,
    )


def _workflow_names(files: Sequence[str | os.PathLike[str]]) -> dict[str, Path]:
    names: dict[str, Path] = {}
    for file in files:
        path = Path(file)
        if path.stem in names:
            raise ConfigError(
                f"two served workflows are named {path.stem!r} ({names[path.stem]} and {path});"
                " rename one file"
            )
        names[path.stem] = path
    return names


def create_app(
    files: Sequence[str | os.PathLike[str]],
    *,
    backends: Mapping[str, Backend] | None = None,
    runs_dir: str | os.PathLike[str] | None = None,
    max_concurrent: int = 4,
    max_body_bytes: int = 1 << 20,
    token: str | None = None,
) -> FastAPI:
    """The ``plait serve`` application for workflow ``files`` (each served by its stem).

    Args:
        files: the workflow files (validated and built now).
        backends: backends replacing the files' entries of the same name (tests).
        runs_dir: where run folders are (default ``<PLAIT_STATE_DIR>/runs``, as ``plait run``).
        max_concurrent: runs executing at once; more are queued.
        max_body_bytes: the largest request body accepted (413 beyond).
        token: when set, every request must carry ``Authorization: Bearer TOKEN``
            (or ``?token=TOKEN``, for the browser's event stream).

    Raises:
        WorkflowValidationError: a file is invalid (every problem, with positions).
        ConfigError: two files share a name, or a file's parts cannot be built.
    """
    if max_concurrent < 1:
        raise ConfigError(f"max_concurrent must be at least 1, got {max_concurrent}")
    root = Path(runs_dir) if runs_dir is not None else load_settings().state_dir / "runs"
    workflows: dict[str, Workflow] = {
        name: load_workflow(path, backends=backends, runs_dir=root)
        for name, path in _workflow_names(files).items()
    }
    service = RunService(workflows, root, max_concurrent)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.requeue_orphans()
        try:
            yield
        finally:
            await service.shutdown()
            for workflow in workflows.values():
                await workflow.aclose()

    app = FastAPI(
        title="plait serve",
        description="Run plait workflows over HTTP: start, follow (server-sent events), "
        "approve, cancel and resume durable runs.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(ServeError)
    async def serve_error(_request: Request, e: ServeError) -> Any:
        return _error(e.status, e.message, e.problems)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, e: RequestValidationError) -> Any:
        problems = [(err.get("loc", ()), str(err.get("msg", ""))) for err in e.errors()]
        summary = "; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems)
        return _error(422, f"invalid request: {summary}", problems)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> Any:
        message = f"{request.method} {request.url.path}: {e.detail}"
        return _error(e.status_code, message, [(["path"], str(e.detail))])

    @app.get("/", response_class=HTMLResponse, summary="The live page")
    async def page() -> str:
        return PAGE

    @app.get("/runs/{run_id}/live", response_class=HTMLResponse, summary="The live page of a run")
    async def live_page(run_id: str) -> str:
        service.record(run_id)
        return PAGE

    @app.get("/workflows", summary="The served workflows and their inputs")
    async def list_workflows() -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "file": str(workflow.path),
                "kind": workflow.kind,
                "description": workflow.spec.description,
                "inputs": {
                    n: spec.model_dump(mode="json") for n, spec in workflow.spec.inputs.items()
                },
                "steps": _steps(workflow),
            }
            for name, workflow in workflows.items()
        ]

    @app.post("/runs", status_code=202, summary="Start a run (returns its id at once)")
    async def start_run(request: RunRequest) -> dict[str, Any]:
        record = await service.submit(request.workflow, request.inputs)
        return service.describe(record)

    @app.get("/runs", summary="Every run, newest first")
    async def list_all_runs() -> list[dict[str, Any]]:
        return service.runs()

    @app.get("/runs/{run_id}", summary="One run: status, steps, answer, pending approvals")
    async def get_run(run_id: str) -> dict[str, Any]:
        return service.describe(service.record(run_id))

    @app.get(
        "/runs/{run_id}/events",
        summary="The run's events as server-sent events (past ones first)",
        response_class=StreamingResponse,
    )
    async def run_events(
        run_id: str, last_event_id: str | None = Header(default=None)
    ) -> StreamingResponse:
        active, past = service.events(run_id)
        after = int(last_event_id) if last_event_id and last_event_id.isdigit() else -1
        return StreamingResponse(
            _stream(active, past, after + 1),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/runs/{run_id}/approvals/{task}", summary="Approve, reject or edit a pending step")
    async def approve(run_id: str, task: str, decision: Approval) -> dict[str, Any]:
        service.decide(run_id, task, decision)
        return {"run_id": run_id, "task_id": task, **decision.model_dump(mode="json")}

    @app.post("/runs/{run_id}/resume", status_code=202, summary="Resume a stopped run")
    async def resume(run_id: str) -> dict[str, Any]:
        return service.describe(service.resume(run_id))

    @app.post("/runs/{run_id}/cancel", summary="Cancel a live run (it stays resumable)")
    async def cancel(run_id: str) -> dict[str, Any]:
        service.cancel(run_id)
        return {"run_id": run_id, "cancelling": True}

    @app.get("/runs/{run_id}/report", response_class=HTMLResponse, summary="The HTML report")
    async def report(run_id: str) -> str:
        from plait.tracing import read_trace

        record = service.record(run_id)
        trace = root / record.run_id / "trace.jsonl"
        if not trace.is_file():
            raise ServeError(404, f"run {run_id} has no trace yet", ["path", "run_id"])
        return build_html_report(read_trace(trace), record.model_dump(mode="json"))

    add_a2a_routes(app, service, workflows, token=bool(token))
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    if token:
        app.add_middleware(_TokenCheck, token=token)
    return app


def _steps(workflow: Workflow) -> list[dict[str, Any]]:
    """A steps workflow's DAG (ids, what each calls, dependencies) for the live page."""
    if workflow.kind != "steps":
        return []
    plan = workflow.plan()
    return [
        {
            "id": task.id,
            "tool": task.tool,
            "depends_on": sorted(task.dependencies),
            "requires_approval": task.requires_approval,
        }
        for task in plan.tasks
    ]


async def _stream(active: ActiveRun | None, past: list[str], start: int) -> Any:
    """Server-sent events: the logged ones from ``start``, then live ones until the run ends."""
    # Events that are ready together go out as one chunk: one write, not one each.
    if active is None:
        if past[start:]:
            yield "".join(past[start:])
        return
    sent = start
    while True:
        waiter = active.changed
        if sent < active.published:
            ready = active.frames[sent : active.published]
            sent += len(ready)
            yield "".join(ready)
        if active.finished:
            return
        try:
            await asyncio.wait_for(waiter.wait(), KEEPALIVE_S)
        except TimeoutError:
            yield ": keep-alive\n\n"


class _BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        received = 0
        refused = False

        async def limited() -> Any:
            # A streamed body over the limit: answer 413 at once, and tell the app
            # the client went away, so it stops reading and its own answer is dropped.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Any) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, guarded)

    async def _refuse(self, scope: dict[str, Any], send: Any) -> None:
        response = _error(
            413,
            f"the request body is over the limit of {self.limit} bytes",
            [(["body"], f"at most {self.limit} bytes")],
        )
        await response(scope, None, send)


class _TokenCheck:
    """Every request must carry the server's token (bearer header, or ``?token=``)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        header = dict(scope["headers"]).get(b"authorization", b"")
        if header.lower().startswith(b"bearer "):
            given = header[7:].strip()
        else:
            for pair in scope.get("query_string", b"").split(b"&"):
                name, _, value = pair.partition(b"=")
                if name == b"token":
                    given = value
        if not hmac.compare_digest(given, self.token):
            response = _error(
                401,
                "this server needs its token: Authorization: Bearer $PLAIT_SERVE_TOKEN",
                [(["header", "authorization"], "missing or wrong token")],
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
