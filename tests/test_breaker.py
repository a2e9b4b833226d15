"""Circuit breakers: the state machine, sharing per process, and a real dead server."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

from plait import ChatRequest, tracing
from plait.backends.openai import OpenAIBackend
from plait.backends.routing import CircuitBreaker, FallbackRouter, shared_breaker
from plait.backends.testing import FunctionBackend
from plait.errors import BackendTimeout, BackendUnavailable, ConfigError
from plait.retry import RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_failures_outside_the_window_do_not_open_the_circuit():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10, clock=clock, window_s=5)
    assert not breaker.failure() and not breaker.failure()
    clock.now = 6  # both earlier failures have left the window
    assert not breaker.failure()
    assert breaker.state == "closed" and breaker.failures == 1
    assert not breaker.failure()
    assert breaker.failure()  # third failure within five seconds opens it
    assert breaker.state == "open" and not breaker.allows()


def test_half_open_lets_exactly_one_probe_through_and_success_closes():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=clock)
    assert breaker.failure()
    clock.now = 9.5
    assert not breaker.allows() and breaker.retry_in() == pytest.approx(0.5)
    clock.now = 10
    assert breaker.state == "half_open" and breaker.allows()
    breaker.begin()
    assert not breaker.allows()  # a second caller waits for the probe's verdict
    assert breaker.success()
    assert breaker.state == "closed" and breaker.allows()


def test_a_failed_probe_opens_for_another_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=clock)
    breaker.failure()
    clock.now = 10
    breaker.begin()
    assert not breaker.failure()  # already open: no new "opened" event
    assert breaker.state == "open" and breaker.retry_in() == 10


def test_bad_settings_are_a_config_error():
    with pytest.raises(ConfigError, match="window_s"):
        CircuitBreaker(window_s=0)


async def test_routers_sharing_a_backend_share_its_breaker():
    calls = []

    def dead(request):
        calls.append(1)
        return BackendTimeout("down")

    primary = FunctionBackend(dead, name="primary")
    backup = FunctionBackend(lambda r: "backup answered", name="backup")
    first = FallbackRouter([primary, backup], failure_threshold=1, name="first")
    second = FallbackRouter([primary, backup], failure_threshold=1, name="second")
    assert first.breaker(primary) is second.breaker(primary) is shared_breaker(primary)
    await first.complete(ChatRequest.from_prompt("hi"))
    assert (await second.complete(ChatRequest.from_prompt("hi"))).text == "backup answered"
    assert len(calls) == 1  # the second router skipped the server the first found dead
    assert "circuit open" in second.last_decision.skipped[0]


def _answer(text: str) -> bytes:
    body = json.dumps(
        {
            "choices": [
                {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class LoopbackServer:
    """An OpenAI-compatible server on 127.0.0.1 that hangs or answers, counting connects."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connects = 0
        self.hang = True
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connects += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        if self.hang:
            await asyncio.sleep(3600)
        writer.write(_answer("primary answered"))
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_real_server_that_refuses_then_hangs_then_recovers():
    clock = Clock()
    port = _free_port()  # nothing listens yet: connections are refused
    primary = OpenAIBackend(
        model="m",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key_env=None,
        timeout=0.5,
        connect_timeout=0.5,
        retry=RetryPolicy(max_attempts=1),
    )
    backup = FunctionBackend(lambda r: "backup answered", name="backup")
    router = FallbackRouter([primary, backup], failure_threshold=1, cooldown_s=30, clock=clock)
    ask = ChatRequest.from_prompt("hi")
    try:
        assert (await router.complete(ask)).text == "backup answered"
        assert router.breaker(primary).state == "open"  # the refused connect opened it

        server = LoopbackServer(port)
        await server.start()  # the server is up but hangs
        assert (await router.complete(ask)).text == "backup answered"
        assert server.connects == 0  # skipped without a connect attempt

        clock.now = 30  # half-open: one probe, it hangs, times out, the circuit reopens
        assert (await router.complete(ask)).text == "backup answered"
        assert server.connects == 1 and router.breaker(primary).state == "open"

        server.hang = False  # recovered, but still within the new cool-down
        assert (await router.complete(ask)).text == "backup answered"
        assert server.connects == 1

        clock.now = 60  # the probe succeeds and closes the circuit
        assert (await router.complete(ask)).text == "primary answered"
        assert (await router.complete(ask)).text == "primary answered"
        assert server.connects == 3 and router.breaker(primary).state == "closed"
        await server.stop()
    finally:
        await primary.aclose()


def test_a_workflow_router_spec_reads_its_breaker_settings():
    from pydantic import ValidationError

    from plait.graphs.workflows._spec_backends import RouterBackendSpec

    spec = RouterBackendSpec.model_validate(
        {
            "kind": "router",
            "policy": "fallback",
            "chain": ["a", "b"],
            "breaker": {"failures": 2, "window_s": 10, "cooldown_s": 5},
        }
    )
    assert (spec.breaker.failures, spec.breaker.window_s, spec.breaker.cooldown_s) == (2, 10, 5)
    default = RouterBackendSpec.model_validate({"kind": "router", "policy": "fallback"})
    assert default.breaker.failures == 3  # on by default for every fallback chain
    with pytest.raises(ValidationError):
        RouterBackendSpec.model_validate(
            {"kind": "router", "policy": "fallback", "breaker": {"failures": 0}}
        )


class CountingTransport(httpx.AsyncHTTPTransport):
    """The real httpx transport, counting the requests it tries to send (each one
    to a refused port is one connect attempt: nothing is pooled)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        return await super().handle_async_request(request)


def _refusing_backend(name: str) -> tuple[OpenAIBackend, CountingTransport, list[float]]:
    """A backend of a closed loopback port (connects are refused), with its default
    retry policy (three tries); the backoff waits are recorded, not slept."""
    transport = CountingTransport()
    backend = OpenAIBackend(
        model="m",
        base_url=f"http://127.0.0.1:{_free_port()}/v1",
        api_key_env=None,
        name=name,
        transport=transport,
    )
    waits: list[float] = []

    async def recorded(seconds: float) -> None:
        waits.append(seconds)

    backend._sleep = recorded
    return backend, transport, waits


async def test_a_refused_connect_is_not_retried_while_a_later_backend_can_serve():
    dead, transport, waits = _refusing_backend("dead")
    backup = FunctionBackend(lambda r: "backup answered", name="backup")
    router = FallbackRouter([dead, backup], failure_threshold=5)
    try:
        assert (await router.complete(ChatRequest.from_prompt("hi"))).text == "backup answered"
    finally:
        await dead.aclose()
    assert transport.attempts == 1 and waits == []  # one connect, no backoff
    assert "could not reach" in router.last_decision.skipped[0]


async def test_only_the_last_backend_that_can_serve_retries_a_refused_connect():
    first, first_transport, first_waits = _refusing_backend("first")
    last, last_transport, last_waits = _refusing_backend("last")
    router = FallbackRouter([first, last], failure_threshold=5)
    try:
        with pytest.raises(BackendUnavailable, match="no backend could serve"):
            await router.complete(ChatRequest.from_prompt("hi"))
    finally:
        await first.aclose()
        await last.aclose()
    assert (first_transport.attempts, len(first_waits)) == (1, 0)
    assert (last_transport.attempts, len(last_waits)) == (3, 2)  # the policy's three tries


async def test_a_backend_before_open_circuits_is_the_last_that_can_serve():
    dead, transport, waits = _refusing_backend("dead")
    backup = FunctionBackend(lambda r: "backup answered", name="backup")
    shared_breaker(backup, failure_threshold=1).failure()  # the backup's circuit is open
    router = FallbackRouter([dead, backup], failure_threshold=5)
    try:
        with pytest.raises(BackendUnavailable):
            await router.complete(ChatRequest.from_prompt("hi"))
    finally:
        await dead.aclose()
    assert transport.attempts == 3 and len(waits) == 2  # nobody else to ask: retried


async def test_each_backend_is_told_whether_to_retry_connects_and_nested_routers_keep_it():
    seen: dict[str, list[bool]] = {"a": [], "b": [], "c": []}

    def failing(name: str) -> FunctionBackend:
        def reply(request: ChatRequest) -> BackendTimeout | str:
            seen[name].append(request.retry_connect)
            return "c answered" if name == "c" else BackendTimeout(f"{name} down")

        return FunctionBackend(reply, name=name)

    a, b, c = failing("a"), failing("b"), failing("c")
    inner = FallbackRouter([a, b], failure_threshold=5, name="inner")
    outer = FallbackRouter([inner, c], failure_threshold=5, name="outer")
    ask = ChatRequest.from_prompt("hi")
    assert (await outer.complete(ask)).text == "c answered"
    # b is the inner chain's last, but the outer chain still has c to go to.
    assert seen == {"a": [False], "b": [False], "c": [True]}
    assert ask.retry_connect  # the caller's request is never changed


async def test_opened_and_closed_circuits_are_traced_and_named_in_the_decisions(tmp_path):
    clock = Clock()
    answers: list[str | BackendTimeout] = [BackendTimeout("down"), "primary answered"]
    primary = FunctionBackend(lambda r: answers.pop(0), name="primary")
    backup = FunctionBackend(lambda r: "backup answered", name="backup")
    router = FallbackRouter([primary, backup], failure_threshold=1, cooldown_s=10, clock=clock)
    ask = ChatRequest.from_prompt("hi")
    with tracing.record_to(tmp_path / "trace.jsonl"):
        with tracing.span("chat one"):
            assert (await router.complete(ask)).text == "backup answered"
        opened = router.last_decision
        clock.now = 10  # half-open: the probe answers and closes the circuit
        with tracing.span("chat two"):
            assert (await router.complete(ask)).text == "primary answered"
        closed = router.last_decision
    assert "primary: circuit opened (1 failure(s) within 30s, skipped for 10s)" in opened.reason
    assert "circuit opened" in opened.skipped[0]
    assert closed.backend == "primary" and "circuit of primary closed" in closed.reason
    spans = {s["name"]: s for s in tracing.read_trace(tmp_path / "trace.jsonl")}
    events = [
        (name, e["attributes"]["plait.breaker.backend"], e["attributes"]["plait.breaker.state"])
        for name in ("chat one", "chat two")
        for e in spans[name]["events"]
        if e["name"] == "plait.breaker"
    ]
    assert events == [("chat one", "primary", "open"), ("chat two", "primary", "closed")]


async def test_a_failed_probe_is_traced_as_the_circuit_opening_again(tmp_path):
    clock = Clock()
    primary = FunctionBackend(lambda r: BackendTimeout("down"), name="primary")
    backup = FunctionBackend(lambda r: "backup answered", name="backup")
    router = FallbackRouter([primary, backup], failure_threshold=1, cooldown_s=10, clock=clock)
    ask = ChatRequest.from_prompt("hi")
    await router.complete(ask)  # opens, untraced
    clock.now = 10
    with tracing.record_to(tmp_path / "trace.jsonl"):
        with tracing.span("chat"):
            await router.complete(ask)
    (span,) = tracing.read_trace(tmp_path / "trace.jsonl")
    (event,) = [e for e in span["events"] if e["name"] == "plait.breaker"]
    assert event["attributes"]["plait.breaker.state"] == "open"
    assert "half-open probe failed" in event["attributes"]["plait.breaker.reason"]
    assert "half-open probe failed" in router.last_decision.reason
