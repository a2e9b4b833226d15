"""A2A servers for tests, written with the a2a-sdk's server side, run by uvicorn on loopback.

Each server runs in a thread of the test process with its own event loop, on a
free port; the agents behind them are plait agents on scripted backends (or
hostile executors: silent, endless, huge).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from a2a.helpers.proto_helpers import new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
    TaskState,
)
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def card(name: str, description: str, url: str, skills: list[tuple[str, str]] = ()) -> AgentCard:
    return AgentCard(
        name=name,
        description=description,
        version="1.0",
        supported_interfaces=[
            AgentInterface(url=url + "/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id=sid, name=sid, description=desc, tags=["test"]) for sid, desc in skills
        ],
    )


class Served:
    """A uvicorn server in a thread; ``url`` is its base URL."""

    def __init__(self, app: Any, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        # A hostile agent's request never ends: shutting down does not wait for it.
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the A2A test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextlib.contextmanager
def a2a_server(
    executor: AgentExecutor,
    *,
    name: str = "remote",
    description: str = "A remote agent.",
    skills: list[tuple[str, str]] = (),
    card_body: bytes | None = None,
) -> Iterator[Served]:
    """An a2a-sdk server for ``executor``; ``card_body`` replaces its card (malformed cards)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    agent_card = card(name, description, url, list(skills))
    handler = DefaultRequestHandler(
        agent_executor=executor, task_store=InMemoryTaskStore(), agent_card=agent_card
    )
    routes = create_jsonrpc_routes(handler, rpc_url="/")
    if card_body is None:
        routes = create_agent_card_routes(agent_card) + routes
    else:

        async def bad_card(_request: Any) -> Response:
            return Response(card_body, media_type="application/json")

        routes = [Route("/.well-known/agent-card.json", bad_card), *routes]
    with Served(Starlette(routes=routes), port) as served:
        yield served


async def _started(context: RequestContext, queue: EventQueue) -> TaskUpdater:
    if context.current_task is None:
        await queue.enqueue_event(new_task_from_user_message(context.message))
    updater = TaskUpdater(queue, context.task_id or "", context.context_id or "")
    await updater.start_work()
    return updater


class PlaitAgentExecutor(AgentExecutor):
    """Answers with a plait agent (any runnable): its answer becomes the task's artifact."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.tasks: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = await _started(context, event_queue)
        self.tasks.append(context.get_user_input())
        result = await self.agent.arun(context.get_user_input())
        await updater.add_artifact([Part(text=result.text)], name="answer")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        await updater.cancel()


class WaitingExecutor(AgentExecutor):
    """Starts work and waits until cancelled; records the cancel it received."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        await _started(context, event_queue)
        self.started.set()
        await asyncio.Event().wait()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.cancelled.append(context.task_id or "")
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        await updater.cancel()


class SilentExecutor(AgentExecutor):
    """Never publishes anything: the reply never comes."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        await asyncio.Event().wait()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


class EndlessExecutor(AgentExecutor):
    """Streams a working update every few milliseconds, forever."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = await _started(context, event_queue)
        n = 0
        while True:
            n += 1
            await updater.update_status(
                TaskState.TASK_STATE_WORKING, message=updater.new_agent_message([Part(text=f"{n}")])
            )
            await asyncio.sleep(0.01)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.cancelled.append(context.task_id or "")
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        await updater.cancel()


class HugeExecutor(AgentExecutor):
    """Streams a 100 MB answer, 1 MB artifact chunk at a time."""

    def __init__(self, megabytes: int = 100) -> None:
        self.megabytes = megabytes

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = await _started(context, event_queue)
        chunk = "x" * (1 << 20)
        for i in range(self.megabytes):
            await updater.add_artifact(
                [Part(text=chunk)], artifact_id="answer", append=i > 0, last_chunk=False
            )
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        await updater.cancel()


def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
