"""``RemoteAgent``: an agent served over A2A (the a2a-sdk client) as a plait team member.

A remote agent is a :class:`Runnable` like any other: a supervisor can delegate
to it, a router agent can pick it, ``task_runner`` runs it as a plan task. Its
agent card (at ``<url>/.well-known/agent-card.json``) gives its name,
description and skills; its task's streamed updates become
:class:`RemoteUpdate` and :class:`TextDelta` events; its answer carries the
source ``a2a:<host>`` (untrusted unless configured otherwise), so policies see
where it came from.

What holds on every run: one deadline (``timeout_s``) covers the whole task,
stream included; every response is capped at ``max_bytes``; a run that is
cancelled or times out cancels the remote task; a message is sent again only
when the connection was refused (the server cannot have accepted it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import get_data_parts, get_text_parts
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from a2a.utils.errors import A2AError

from plait._sync import run_sync
from plait.errors import (
    ConfigError,
    RemoteAgentError,
    RemoteAgentProtocolError,
    RemoteAgentTimeout,
)
from plait.provenance import Source, TrustLevel, a2a_source, current

from ._remote_http import capped_client, fetch_card, is_unsent, remote_error
from ._trace import AgentEvent, AgentResult, RemoteUpdate, RunFinished, TextDelta, Trace

__all__ = ["RemoteAgent"]

_END = object()  # the producer's last item: the remote stream ended
_DONE = {"completed"}
_FAILED = {"failed", "canceled", "rejected"}
_ASKS = {"input_required", "auth_required"}
CANCEL_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.5


def _state(value: int) -> str:
    return TaskState.Name(value).removeprefix("TASK_STATE_").lower()


@dataclass
class _Progress:
    """What the remote task has told so far: its id, state, artifacts and last message."""

    task_id: str = ""
    state: str = ""
    artifacts: dict[str, list[Part]] = field(default_factory=dict)
    message: list[Part] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in _DONE | _FAILED

    def absorb_task(self, task: Task) -> None:
        self.task_id = task.id
        self.state = _state(task.status.state)
        for artifact in task.artifacts:
            self.artifacts[artifact.artifact_id] = list(artifact.parts)
        if task.status.HasField("message"):
            self.message = list(task.status.message.parts)

    def take(self, response: StreamResponse) -> list[AgentEvent]:
        """The plait events of one streamed response (the state is updated too)."""
        if response.HasField("message"):  # a direct reply: no task
            self.message = list(response.message.parts)
            self.state = "completed"
            return [TextDelta(step=1, delta=t) for t in get_text_parts(self.message)]
        if response.HasField("task"):
            self.absorb_task(response.task)
            return [RemoteUpdate(self.task_id, self.state, _text(self.message))]
        if response.HasField("status_update"):
            update = response.status_update
            self.task_id = self.task_id or update.task_id
            self.state = _state(update.status.state)
            parts = list(update.status.message.parts) if update.status.HasField("message") else []
            if parts:
                self.message = parts
            return [RemoteUpdate(self.task_id, self.state, _text(parts))]
        if response.HasField("artifact_update"):
            chunk = response.artifact_update
            self.task_id = self.task_id or chunk.task_id
            parts = list(chunk.artifact.parts)
            if chunk.append:
                self.artifacts.setdefault(chunk.artifact.artifact_id, []).extend(parts)
            else:
                self.artifacts[chunk.artifact.artifact_id] = parts
            return [TextDelta(step=1, delta=t) for t in get_text_parts(parts)]
        return []

    def answer(self) -> tuple[Any, str]:
        """``(output, text)``: the artifacts' text (or data), else the last message's."""
        parts = [p for ps in self.artifacts.values() for p in ps] or self.message
        texts = get_text_parts(parts)
        if texts:
            text = "".join(texts)
            return text, text
        data = get_data_parts(parts)
        if data:
            value = data[0] if len(data) == 1 else data
            return value, json.dumps(value)
        return "", ""


def _text(parts: list[Part]) -> str:
    return "".join(get_text_parts(parts))


class RemoteAgent:
    """An A2A agent at ``url``, used like a local agent.

    Args:
        url: the agent's base URL (its card is at ``<url>/.well-known/agent-card.json``).
        name: the name plans and teams call it by (default: its card's name).
        token: sent as ``Authorization: Bearer <token>`` on every request.
        timeout_s: the deadline of one run: card, message, stream and answer.
        connect_timeout_s: the deadline of fetching the card, and of each connection.
        max_bytes: the most one response (the card, a reply, a whole event
            stream) may be; beyond it the run fails and the rest is not read.
        trust: the trust of its answers' source ``a2a:<host>`` (``low``: untrusted).
        connect_retries: sends to repeat when a connection is refused (nothing
            else is retried: the server may have accepted the message).

    The card is fetched by :meth:`aconnect` (or the first run). Until then only
    ``name`` is known when given; a supervisor or router that is to read the
    description should get an agent that is connected.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        token: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        max_bytes: int = 8 * 1024 * 1024,
        trust: TrustLevel = "low",
        connect_retries: int = 2,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"a remote agent needs an http(s) URL with a host, got {url!r}")
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise ConfigError(f"remote agent {url}: timeouts must be positive")
        if max_bytes < 1024:
            raise ConfigError(f"remote agent {url}: max_bytes must be at least 1024")
        if connect_retries < 0:
            raise ConfigError(f"remote agent {url}: connect_retries cannot be negative")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_bytes = max_bytes
        self.connect_retries = connect_retries
        self.source: Source = a2a_source(parts.hostname, trust)
        self._name = name
        self._card: AgentCard | None = None

    def __repr__(self) -> str:
        return f"RemoteAgent({self.url!r}, name={self._name or self._card_name()!r})"

    # -- what the card says ---------------------------------------------------

    def _card_name(self) -> str | None:
        return self._card.name if self._card is not None else None

    @property
    def card(self) -> AgentCard | None:
        """The agent card (``None`` until fetched)."""
        return self._card

    @property
    def name(self) -> str:
        """The given name, else the card's.

        Raises:
            ConfigError: neither is known yet (give ``name`` or connect first).
        """
        name = self._name or self._card_name()
        if not name:
            raise ConfigError(
                f"remote agent {self.url} has no name yet: pass name=... or await aconnect() first"
            )
        return name

    @property
    def description(self) -> str:
        """The card's description (empty until fetched)."""
        return self._card.description if self._card is not None else ""

    @property
    def skills(self) -> tuple[str, ...]:
        """The card's skills, one line each: ``name: description``."""
        if self._card is None:
            return ()
        return tuple(f"{s.name or s.id}: {s.description}".rstrip(": ") for s in self._card.skills)

    @property
    def instructions(self) -> str:
        """What it does, for prompts and tool selection: its description, then its skills."""
        lines = [self.description.strip()] if self.description.strip() else []
        lines += [f"- {skill}" for skill in self.skills]
        return "\n".join(lines)

    def _client(self) -> httpx.AsyncClient:
        return capped_client(
            self.url,
            token=self.token,
            timeout_s=self.timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            max_bytes=self.max_bytes,
        )

    async def _fetch_card(self, http: httpx.AsyncClient) -> AgentCard:
        if self._card is None:
            try:
                self._card = await asyncio.wait_for(
                    fetch_card(http, self.url), self.connect_timeout_s
                )
            except TimeoutError as e:
                raise RemoteAgentTimeout(self.url, self.connect_timeout_s, "send its card") from e
        return self._card

    async def aconnect(self) -> RemoteAgent:
        """Fetch the agent card (once); returns the agent itself.

        Raises:
            RemoteAgentProtocolError: the card is malformed or offers no JSON-RPC.
            RemoteAgentError: the card could not be fetched.
            RemoteAgentTimeout: it did not come within ``connect_timeout_s``.
        """
        async with self._client() as http:
            await self._fetch_card(http)
        return self

    def connect(self) -> RemoteAgent:
        """Blocking :meth:`aconnect`, for code that has no event loop running."""
        return run_sync(self.aconnect(), name="RemoteAgent.connect()", instead="await aconnect()")

    # -- running ----------------------------------------------------------------

    async def arun(self, task: str) -> AgentResult[Any]:
        """Send ``task`` to the remote agent and return its answer.

        Raises:
            RemoteAgentError: its task failed, was rejected or cancelled, asked
                for input, or it could not be reached.
            RemoteAgentTimeout: it did not finish within ``timeout_s``.
            RemoteAgentTooLarge: a response was over ``max_bytes``.
            RemoteAgentProtocolError: its card or replies break the protocol.
        """
        result: AgentResult[Any] | None = None
        async with contextlib.aclosing(self.stream(task)) as events:
            async for event in events:
                if isinstance(event, RunFinished):
                    result = event.result
        assert result is not None  # every stream ends with RunFinished
        return result

    def run(self, task: str) -> AgentResult[Any]:
        """Blocking :meth:`arun`, for code that has no event loop running."""
        return run_sync(self.arun(task), name="RemoteAgent.run()", instead="await agent.arun()")

    async def stream(self, task: str) -> AsyncGenerator[AgentEvent, None]:
        """Run ``task``: :class:`RemoteUpdate` and :class:`TextDelta` events, then the end.

        The last event is ``RunFinished``; errors are those of :meth:`arun`.
        """
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        deadline = loop.time() + self.timeout_s
        read = current() or frozenset()
        progress = _Progress()
        async with self._client() as http:
            card = await self._fetch_card(http)
            client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
            message = Message(
                role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text=task)]
            )
            queue: asyncio.Queue[Any] = asyncio.Queue()
            producer = loop.create_task(
                self._produce(client, SendMessageRequest(message=message), queue)
            )
            try:
                while True:
                    item = await self._next(queue, deadline - loop.time())
                    if item is _END:
                        break
                    for event in progress.take(item):
                        yield event
                    self._check(progress)
                    if progress.finished:
                        break
                if not progress.finished:
                    await self._poll(client, progress, deadline)
            except BaseException:
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
                if progress.task_id and not progress.finished:
                    await self._cancel_remote(client, progress.task_id)
                raise
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
        output, text = progress.answer()
        trace = Trace(
            agent=self._name or card.name,
            sources=frozenset(read) | {self.source},
            duration_s=time.perf_counter() - started,
        )
        yield RunFinished(AgentResult(output=output, text=text, stop_reason="done", trace=trace))

    async def _produce(
        self, client: Client, request: SendMessageRequest, queue: asyncio.Queue[Any]
    ) -> None:
        """Relay the remote stream into ``queue`` (every failure too: the reader maps it)."""
        for attempt in range(self.connect_retries + 1):
            received = False
            try:
                async for response in client.send_message(request):
                    received = True
                    await queue.put(response)
                break
            except Exception as e:  # relayed, not handled: the reader raises it as plait's
                if not received and attempt < self.connect_retries and is_unsent(e):
                    await asyncio.sleep(0.2 * 2**attempt)
                    continue
                await queue.put(e)
                return
        await queue.put(_END)

    async def _next(self, queue: asyncio.Queue[Any], remaining: float) -> Any:
        if remaining <= 0:
            raise RemoteAgentTimeout(self.url, self.timeout_s)
        try:
            item = await asyncio.wait_for(queue.get(), remaining)
        except TimeoutError as e:
            raise RemoteAgentTimeout(self.url, self.timeout_s) from e
        if isinstance(item, BaseException):
            raise remote_error(self.url, item, self.timeout_s) from item
        return item

    def _check(self, progress: _Progress) -> None:
        """Raise for a task that failed, or asks for what a plait run cannot give."""
        if progress.state in _FAILED:
            said = _text(progress.message) or "(no reason given)"
            raise RemoteAgentError(
                self.url, f"its task {progress.task_id} ended {progress.state}: {said}"
            )
        if progress.state in _ASKS:
            raise RemoteAgentError(
                self.url,
                f"its task {progress.task_id} asks for more ({progress.state}): "
                f"{_text(progress.message) or '(no question given)'}; a plait run cannot answer it",
            )

    async def _poll(self, client: Client, progress: _Progress, deadline: float) -> None:
        """A stream (or a plain reply) ended before the task did: ask for it until it does."""
        if not progress.task_id:
            raise RemoteAgentProtocolError(self.url, "its reply ended without a task or an answer")
        loop = asyncio.get_running_loop()
        while not progress.finished:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RemoteAgentTimeout(self.url, self.timeout_s)
            try:
                task = await asyncio.wait_for(
                    client.get_task(GetTaskRequest(id=progress.task_id)), remaining
                )
            except TimeoutError as e:
                raise RemoteAgentTimeout(self.url, self.timeout_s) from e
            except (A2AError, httpx.HTTPError, ValueError) as e:
                raise remote_error(self.url, e, self.timeout_s) from e
            progress.absorb_task(task)
            self._check(progress)
            if not progress.finished:
                await asyncio.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - loop.time())))

    async def _cancel_remote(self, client: Client, task_id: str) -> None:
        """Ask the remote agent to cancel ``task_id`` (best effort, briefly: the run is ending)."""
        with contextlib.suppress(
            A2AError, httpx.HTTPError, RemoteAgentError, TimeoutError, ValueError
        ):
            await asyncio.wait_for(
                client.cancel_task(CancelTaskRequest(id=task_id)), CANCEL_TIMEOUT_S
            )
