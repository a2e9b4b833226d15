"""Fallback chains: try backends in order, skipping dead ones for a cool-down."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Sequence

from plait import tracing
from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk
from plait.errors import (
    BackendProtocolError,
    BackendUnavailable,
    BudgetExceeded,
    ConfigError,
    PlaitError,
    RunError,
    is_control_flow,
)
from plait.retry import is_transient

from .._base import Backend
from ._breaker import CircuitBreaker, shared_breaker
from ._costs import CostLedger
from ._router import Route, Router

__all__ = ["FallbackRouter"]


class FallbackRouter(Router):
    """Tries ``chain`` in order until one backend answers.

    A backend is passed over when its circuit is open, when a ledger says the
    call would pass the budget, or when it fails with a transient error (see
    :func:`plait.retry.is_transient`) before sending any output. Every backend
    but the last one that could serve is asked not to retry a connection it
    cannot open (``ChatRequest.retry_connect=False``): the next backend is
    asked at once instead of after a round of backoff.

    Once output has been streamed to the caller, a failure is raised: the caller
    has seen partial text. :meth:`complete` shows no partial text, so there a
    backend failing mid-answer (a stream cut off before ``[DONE]``:
    :class:`~plait.errors.BackendStreamTruncated`) is passed over too.

    A circuit that opens (or whose half-open probe fails) or closes leaves a
    ``plait.breaker`` event on the model call's span (``plait.breaker.state``:
    ``open`` or ``closed``) and is named in the reason of the routing decision
    that follows.

    Args:
        chain: backends, preferred first.
        failure_threshold: failures within ``window_s`` that open a backend's circuit.
        cooldown_s: seconds an open circuit skips its backend.
        window_s: how far back failures count.
        fallback_on: which errors move on to the next backend (never asked about
            usage errors such as ``ConfigError``, nor control flow: those raise).
        clock: monotonic clock (tests pass a fake one).
        name: router name.
        ledger: cost accounting and caps.
    """

    def __init__(
        self,
        chain: Sequence[Backend],
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        window_s: float = 30.0,
        fallback_on: Callable[[BaseException], bool] = is_transient,
        clock: Callable[[], float] = time.monotonic,
        name: str = "fallback",
        ledger: CostLedger | None = None,
    ) -> None:
        super().__init__(name=name, ledger=ledger)
        if not chain:
            raise ConfigError("FallbackRouter needs at least one backend")
        if failure_threshold < 1 or cooldown_s < 0:
            raise ConfigError("failure_threshold must be >= 1 and cooldown_s >= 0")
        self.chain = tuple(chain)
        # One breaker per backend object per process (see shared_breaker): a
        # server found dead by one router or agent is skipped by all of them.
        self.breakers = {
            id(b): shared_breaker(
                b,
                failure_threshold=failure_threshold,
                window_s=window_s,
                cooldown_s=cooldown_s,
                clock=clock,
            )
            for b in self.chain
        }
        self._fallback_on = fallback_on

    def breaker(self, backend: Backend) -> CircuitBreaker:
        """The circuit breaker of one backend of the chain."""
        return self.breakers[id(backend)]

    def backends(self) -> Sequence[Backend]:
        return self.chain

    async def choose(self, request: ChatRequest) -> Route:
        for backend in self.chain:
            if self.breaker(backend).allows():
                return Route(backend, "first backend of the chain with a closed circuit")
        return Route(self.chain[0], "every circuit is open")

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        async for chunk in self._run(request, show_partial=True):
            yield chunk

    async def complete(self, request: ChatRequest) -> Completion:
        """Like :meth:`stream`, but no partial text is shown to anyone: a backend that
        fails mid-answer (a truncated stream, a dropped connection) is passed over
        like one that failed before its first token."""
        async with contextlib.aclosing(self._run(request, show_partial=False)) as chunks:
            async for chunk in chunks:
                if chunk.completion is not None:
                    return chunk.completion
        raise BackendProtocolError(f"router {self.name!r} ended its stream without a completion")

    async def _run(
        self, request: ChatRequest, *, show_partial: bool
    ) -> AsyncGenerator[StreamChunk, None]:
        skipped: list[str] = []
        changed: list[str] = []  # circuits this call opened, for the next decision's reason
        last_error: BaseException | None = None
        for position, backend in enumerate(self.chain):
            breaker = self.breaker(backend)
            if not breaker.allows():
                skipped.append(f"{backend.name}: circuit open for {breaker.retry_in():.1f}s more")
                continue
            if self.ledger is not None:
                problem = self.ledger.would_exceed(backend.name, request)
                if problem is not None:
                    skipped.append(f"{backend.name}: over budget ({problem})")
                    continue
            reason = (
                "first backend of the chain"
                if position == 0
                else (f"fallback #{position} after {len(skipped)} skipped or failed")
            )
            reason = "; ".join([reason, *changed])
            route = Route(backend, reason)
            started = False
            probe = breaker.state == "half_open"
            breaker.begin()
            try:
                async for chunk in self.serve(
                    self._for(request, position), backend, route, reason, tuple(skipped)
                ):
                    if chunk.completion is None and not show_partial:
                        continue  # complete(): deltas are dropped, so nobody saw them
                    started = True
                    yield chunk
            except Exception as e:
                # Control flow and usage errors (a misconfigured backend would be
                # skipped, hiding the mistake) are raised whatever fallback_on says.
                if is_control_flow(e) or (
                    isinstance(e, PlaitError) and not isinstance(e, RunError)
                ):
                    raise
                if started or not self._fallback_on(e):
                    if self._fallback_on(e):
                        self._failed(backend, breaker, probe)
                    raise
                note = self._failed(backend, breaker, probe)
                skipped.append(
                    f"{backend.name}: {type(e).__name__}: {e}" + (f"; {note}" if note else "")
                )
                if note:
                    changed.append(f"{backend.name}: {note}")
                last_error = e
                continue
            finally:
                # A probe that ended without a verdict (cancelled, a usage error)
                # must not leave the half-open circuit waiting forever.
                breaker.probing = False
            return
        message = f"router {self.name!r}: no backend could serve the request: " + "; ".join(skipped)
        if last_error is None and any("over budget" in s for s in skipped):
            self._record(
                request, Route(self.chain[0], message), "", skipped, "over_budget", message
            )
            raise BudgetExceeded(message)
        self._record(request, Route(self.chain[0], message), "", skipped, "error", message)
        raise BackendUnavailable(message) from last_error

    def _for(self, request: ChatRequest, position: int) -> ChatRequest:
        """``request`` as sent to the backend at ``position``.

        While a later backend could serve (its circuit lets requests through),
        a connection this one cannot open is not worth a round of backoff: the
        request asks it not to retry (``retry_connect=False``). The last backend
        that could serve keeps the caller's setting (an outer router's, nested).
        """
        later = self.chain[position + 1 :]
        if request.retry_connect and any(self.breaker(b).allows() for b in later):
            return request.model_copy(update={"retry_connect": False})
        return request

    def _answered(self, backend: Backend) -> str | None:
        if self.breaker(backend).success():
            self._trace_breaker(backend, "closed", "its half-open probe answered")
            return f"circuit of {backend.name} closed: its half-open probe answered"
        return None

    def _failed(self, backend: Backend, breaker: CircuitBreaker, probe: bool) -> str | None:
        """Count a failure of ``backend``; say (and trace) when its circuit opened."""
        opened = breaker.failure()
        if not opened and not probe:
            return None
        cooldown = f"skipped for {breaker.cooldown_s:g}s"
        why = (
            f"half-open probe failed, {cooldown} more"
            if probe
            else f"{breaker.failures} failure(s) within {breaker.window_s:g}s, {cooldown}"
        )
        self._trace_breaker(backend, "open", why)
        return f"circuit opened ({why})"

    def _trace_breaker(self, backend: Backend, state: str, why: str) -> None:
        """One ``plait.breaker`` event on the current span (the model call's)."""
        tracing.add_event(
            "plait.breaker",
            {
                "plait.breaker.router": self.name,
                "plait.breaker.backend": backend.name,
                "plait.breaker.state": state,
                "plait.breaker.reason": why,
            },
        )
