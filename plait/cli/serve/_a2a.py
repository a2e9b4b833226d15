"""``plait serve`` over A2A: every served workflow is an A2A agent too (a2a-sdk server side).

Workflow ``NAME`` answers JSON-RPC at ``/a2a/NAME/`` and shows its agent card at
``/a2a/NAME/.well-known/agent-card.json`` (with one workflow served, at
``/.well-known/agent-card.json`` as well). Message send, streaming, task get and
cancel are the a2a-sdk's; behind them is the HTTP API's own machinery: a
message starts a durable run through :class:`RunService` whose run id *is* the
A2A task id (so ``GET /runs/{id}``, ``plait runs show`` and approvals work on
it), the run's events become task status updates, and its answer the task's
artifact. The A2A task itself is kept beside the run (``a2a_task.json`` in the
run folder), so ``tasks/get`` answers after a restart. The token rule is the
HTTP API's: the same middleware guards these routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from a2a.helpers.proto_helpers import (
    get_data_parts,
    get_text_parts,
    new_data_part,
    new_task_from_user_message,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.agent_execution.simple_request_context_builder import (
    SimpleRequestContextBuilder,
)
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.server.id_generator import IDGenerator, IDGeneratorContext
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    Message,
    Part,
    SecurityRequirement,
    SecurityScheme,
    StringList,
    Task,
    TaskState,
)
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToJson, Parse, ParseError

from plait._version import __version__
from plait.graphs import Workflow, new_run_id

from ._service import RunService, ServeError

__all__ = ["A2A_PREFIX", "add_a2a_routes", "workflow_card"]

A2A_PREFIX = "/a2a"
TASK_FILE = "a2a_task.json"
CARD_PATH = "/.well-known/agent-card.json"
CANCEL_WAIT_S = 10.0


class _RunIds(IDGenerator):
    """A2A task ids are run ids: one id names the task and its durable run."""

    def generate(self, context: IDGeneratorContext) -> str:
        return new_run_id()


class RunTaskStore(InMemoryTaskStore):
    """A2A tasks in memory, each also written to its run folder (read back after a restart)."""

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir

    async def save(self, task: Task, context: ServerCallContext) -> None:
        await super().save(task, context)
        folder = self.runs_dir / task.id
        if folder.is_dir():  # the run exists once its queued record is written
            temporary = folder / (TASK_FILE + ".tmp")
            temporary.write_text(MessageToJson(task), encoding="utf-8")
            os.replace(temporary, folder / TASK_FILE)

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        task = await super().get(task_id, context)
        if task is not None or "/" in task_id or task_id.startswith("."):
            return task
        path = self.runs_dir / task_id / TASK_FILE
        if not path.is_file():
            return None
        try:
            task = Parse(path.read_text(encoding="utf-8"), Task())
        except (OSError, ParseError):
            return None
        await super().save(task, context)
        return task


def workflow_card(name: str, workflow: Workflow, base_url: str, *, token: bool) -> AgentCard:
    """The agent card of served workflow ``name`` (its JSON-RPC endpoint under ``base_url``)."""
    inputs = workflow.spec.inputs
    described = ", ".join(
        f"{n} ({spec.type}{', required' if spec.default is None else ''})"
        for n, spec in inputs.items()
    )
    card = AgentCard(
        name=name,
        description=workflow.spec.description or f"The plait workflow {name} ({workflow.kind}).",
        version=__version__,
        supported_interfaces=[
            AgentInterface(
                url=f"{base_url.rstrip('/')}{A2A_PREFIX}/{name}/",
                protocol_binding="JSONRPC",
                protocol_version="1.0",
            )
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "application/json"],
        skills=[
            AgentSkill(
                id=name,
                name=name,
                description=(
                    f"Runs the {workflow.kind} workflow. Inputs: {described or 'none'}; send "
                    "them as a JSON object (a data part or the text), or the only required one "
                    "as plain text."
                ),
                tags=["plait", workflow.kind],
            )
        ],
    )
    if token:
        card.security_schemes["bearer"].CopyFrom(
            SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="bearer"))
        )
        card.security_requirements.append(SecurityRequirement(schemes={"bearer": StringList()}))
    return card


def message_inputs(workflow: Workflow, message: Message) -> dict[str, Any]:
    """The workflow inputs a message gives: a JSON object (data part or text), else its text
    for the one input that needs a value.

    Raises:
        ServeError: the text cannot be placed (several inputs need values).
    """
    data = [d for d in get_data_parts(list(message.parts)) if isinstance(d, dict)]
    text = "".join(get_text_parts(list(message.parts))).strip()
    values: dict[str, Any] | None = data[0] if data else None
    if values is None and text.startswith("{"):
        with contextlib.suppress(ValueError):
            parsed = json.loads(text)
            values = parsed if isinstance(parsed, dict) else None
    specs = workflow.spec.inputs
    if values is None:
        needed = [n for n, spec in specs.items() if spec.default is None] or list(specs)[:1]
        if not specs or not text:
            values = {}
        elif len(needed) == 1:
            values = {needed[0]: text}
        else:
            raise ServeError(
                422,
                f"send the inputs {', '.join(needed)} as a JSON object: the text alone "
                "cannot say which is which",
                ["message", "parts"],
            )
    # A data part's numbers arrive as doubles (protobuf's Value): 3 is 3.0.
    return {
        n: int(v)
        if isinstance(v, float) and v.is_integer() and n in specs and specs[n].type == "integer"
        else v
        for n, v in values.items()
    }


def _status_text(event: dict[str, Any]) -> str:
    kind = event.get("type")
    if kind == "task":
        error = f": {event['error']}" if event.get("error") else ""
        return f"step {event.get('task_id')} ({event.get('tool')}) {event.get('kind')}{error}"
    if kind == "approval":
        return f"step {event.get('task_id')} approval {event.get('state')}"
    if kind == "model_call":
        return f"model call on {event.get('backend')}"
    if kind == "run":
        return f"run {event.get('status')}"
    return str(kind)


class WorkflowExecutor(AgentExecutor):
    """Runs served workflow ``name`` for A2A messages, through the HTTP API's run service."""

    def __init__(self, service: RunService, name: str) -> None:
        self.service = service
        self.name = name

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None and context.task_id is not None
        run_id = context.task_id
        updater = TaskUpdater(event_queue, run_id, context.context_id or "")
        if context.current_task is not None:  # a follow-up message: a run takes one
            await updater.reject(
                updater.new_agent_message(
                    [Part(text=f"task {run_id} already has its run; send a new message instead")]
                )
            )
            return
        workflow = self.service.workflow_named(self.name)
        try:
            inputs = message_inputs(workflow, context.message)
            # The run is on disk and started before the client learns the task id,
            # so a cancel (which needs the id) always finds a run to stop.
            await self.service.submit(self.name, inputs, run_id=run_id)
        except ServeError as e:
            await event_queue.enqueue_event(new_task_from_user_message(context.message))
            await updater.reject(updater.new_agent_message([Part(text=e.message)]))
            return
        await event_queue.enqueue_event(new_task_from_user_message(context.message))
        answer: Any = None
        async for event in self.service.follow(run_id):
            kind, status = event.get("type"), event.get("status")
            if kind == "answer":
                answer = event.get("answer")
            elif kind == "run" and status not in ("queued", "running"):
                await self._finish(updater, status, event.get("error"), answer)
                return
            else:
                parts = [Part(text=_status_text(event)), new_data_part(event)]
                await updater.update_status(
                    TaskState.TASK_STATE_WORKING, message=updater.new_agent_message(parts)
                )

    async def _finish(
        self, updater: TaskUpdater, status: str | None, error: str | None, answer: Any
    ) -> None:
        if status == "done":
            part = Part(text=answer) if isinstance(answer, str) else new_data_part(answer)
            await updater.add_artifact([part], name="answer")
            await updater.complete()
        elif status == "interrupted":
            await updater.cancel(updater.new_agent_message([Part(text="the run was cancelled")]))
        else:
            said = error or f"the run ended {status}"
            await updater.failed(updater.new_agent_message([Part(text=said)]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        run_id = context.task_id or ""
        active = self.service.active.get(run_id)
        with contextlib.suppress(ServeError):  # already over: only the task is left to close
            self.service.cancel(run_id)
        if active is not None and active.task is not None:
            # The run records itself interrupted before the task says cancelled.
            await asyncio.wait({active.task}, timeout=CANCEL_WAIT_S)
        updater = TaskUpdater(event_queue, run_id, context.context_id or "")
        await updater.cancel(updater.new_agent_message([Part(text="the run was cancelled")]))


def add_a2a_routes(
    app: FastAPI, service: RunService, workflows: dict[str, Workflow], *, token: bool
) -> None:
    """Serve each workflow as an A2A agent on ``app`` (see the module docstring)."""
    store = RunTaskStore(service.runs_dir)
    builder = SimpleRequestContextBuilder(task_id_generator=_RunIds())
    for name, workflow in workflows.items():
        handler = DefaultRequestHandler(
            agent_executor=WorkflowExecutor(service, name),
            task_store=store,
            agent_card=workflow_card(name, workflow, "http://localhost", token=token),
            request_context_builder=builder,
        )
        app.router.routes.extend(create_jsonrpc_routes(handler, rpc_url=f"{A2A_PREFIX}/{name}/"))

    async def card(request: Request, name: str) -> JSONResponse:
        if name not in workflows:
            known = ", ".join(sorted(workflows))
            raise ServeError(404, f"no workflow {name!r} is served; served: {known}", ["path"])
        built = workflow_card(name, workflows[name], str(request.base_url), token=token)
        return JSONResponse(agent_card_to_dict(built))

    app.add_api_route(
        f"{A2A_PREFIX}/{{name}}{CARD_PATH}", card, methods=["GET"], summary="A workflow's A2A card"
    )
    if len(workflows) == 1:
        (only,) = workflows

        async def only_card(request: Request) -> JSONResponse:
            return await card(request, only)

        app.add_api_route(CARD_PATH, only_card, methods=["GET"], summary="The A2A agent card")
