"""Circuit breakers: the state machine, sharing per process, and a real dead server."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from plait import ChatRequest
from plait.backends.openai import OpenAIBackend, RetryPolicy
from plait.backends.routing import CircuitBreaker, FallbackRouter, shared_breaker
from plait.backends.testing import FunctionBackend
from plait.errors import BackendTimeout, ConfigError


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
