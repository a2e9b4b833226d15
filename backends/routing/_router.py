"""The router contract: a router is a backend that picks another backend per request.

Every request a router serves leaves one :class:`RoutingDecision` in its
``decisions`` log: which backend served it, why, what it cost, and which
backends were skipped (over budget, circuit open, failed) on the way.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from plait import tracing
from plait.chat import ChatRequest
from plait.completions import StreamChunk, Usage
from plait.errors import BudgetExceeded, ConfigError, is_control_flow

from .._base import Backend, Capabilities
from ._costs import CostLedger

__all__ = ["Route", "Router", "RoutingDecision"]

Outcome = Literal["ok", "error", "over_budget", "cancelled"]


class RoutingDecision(BaseModel):
    """One routing decision and how the call it led to went.

    Attributes:
        router: the router's name.
        backend: the backend that served (or was to serve) the request; empty if none.
        reason: why that backend, in words (the rule, score vs threshold, fallback...).
        agent: ``ChatRequest.agent`` of the request.
        tags: ``ChatRequest.tags`` of the request.
        score: the request's difficulty score, for scoring routers.
        threshold: the threshold the score was compared with.
        skipped: backends passed over before ``backend``, each as ``"name: why"``.
        outcome: ``ok``, ``error``, ``over_budget`` or ``cancelled`` (consumer stopped early).
        error: the error's message when the outcome is not ``ok``.
        usage: tokens the call used.
        cost: what the call cost (per the ledger's prices; 0 without a ledger).
        at: Unix time of the decision.
    """

    model_config = ConfigDict(frozen=True)

    router: str
    backend: str
    reason: str
    agent: str | None = None
    tags: tuple[str, ...] = ()
    score: float | None = None
    threshold: float | None = None
    skipped: tuple[str, ...] = ()
    outcome: Outcome = "ok"
    error: str | None = None
    usage: Usage = Usage()
    cost: float = Field(default=0.0, ge=0.0)
    at: float = Field(default_factory=time.time)


@dataclass(frozen=True)
class Route:
    """What :meth:`Router.choose` answers.

    Attributes:
        backend: the chosen backend.
        reason: why, in words.
        score: difficulty score, for scoring routers.
        threshold: the threshold it was compared with.
        cheaper: backends to use instead, in order, if ``backend`` would pass the budget.
    """

    backend: Backend
    reason: str
    score: float | None = None
    threshold: float | None = None
    cheaper: tuple[Backend, ...] = field(default=())


class Router(Backend):
    """Base of all routers: choose a backend, enforce the budget, record the decision.

    Subclasses implement :meth:`choose` and :meth:`backends`. With a
    :class:`CostLedger`, a call that could pass a cap is moved to the route's
    cheaper alternatives when there are some, and refused with
    :class:`BudgetExceeded` (before any request is sent) when none fits.

    Args:
        name: router name (in decisions and traces).
        ledger: cost accounting and caps, typically shared by every router of a run.
        max_decisions: how many decisions the log keeps (oldest dropped first).

    The ``decisions`` log belongs to the router, so it holds every caller's
    decisions in the order they were made: runs sharing a router interleave
    there. A run's own decisions are the ``plait.route`` events of its trace.
    """

    def __init__(
        self, *, name: str, ledger: CostLedger | None = None, max_decisions: int = 10_000
    ) -> None:
        if max_decisions < 1:
            raise ConfigError("max_decisions must be at least 1")
        self.name = name
        self.ledger = ledger
        self.decisions: deque[RoutingDecision] = deque(maxlen=max_decisions)

    @abstractmethod
    def backends(self) -> Sequence[Backend]:
        """Every backend this router may send requests to."""

    @abstractmethod
    async def choose(self, request: ChatRequest) -> Route:
        """Pick the backend for ``request`` and say why."""

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        # Conservative: a feature is promised only when every routed-to backend has it.
        children = self.backends()
        return Capabilities(
            native_tool_calls=all(b.capabilities.native_tool_calls for b in children),
            json_schema_output=all(b.capabilities.json_schema_output for b in children),
            embeddings=False,
            prefix_cache=all(b.capabilities.prefix_cache for b in children),
        )

    @property
    def last_decision(self) -> RoutingDecision | None:
        """The most recent decision of any caller, if any (see the class notes)."""
        return self.decisions[-1] if self.decisions else None

    async def aclose(self) -> None:
        """Close every backend this router routes to."""
        for backend in self.backends():
            await backend.aclose()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        route = await self.choose(request)
        backend, skipped = route.backend, []
        if self.ledger is not None:
            for candidate in (route.backend, *route.cheaper):
                problem = self.ledger.would_exceed(candidate.name, request)
                if problem is None:
                    backend = candidate
                    break
                skipped.append(f"{candidate.name}: over budget ({problem})")
            else:
                error = BudgetExceeded(
                    f"router {self.name!r} refused the request of agent {request.agent!r}: "
                    + "; ".join(skipped)
                )
                self._record(request, route, "", skipped, "over_budget", str(error))
                raise error
        reason = route.reason
        if backend is not route.backend:
            reason += f"; downgraded to {backend.name!r} to stay within budget"
        async for chunk in self.serve(request, backend, route, reason, tuple(skipped)):
            yield chunk

    async def serve(
        self,
        request: ChatRequest,
        backend: Backend,
        route: Route,
        reason: str,
        skipped: tuple[str, ...],
    ) -> AsyncGenerator[StreamChunk, None]:
        """Stream ``request`` from ``backend`` with ledger accounting and one decision record."""
        decided = Route(backend, reason, route.score, route.threshold)
        reservation = self.ledger.reserve(backend.name, request) if self.ledger else 0.0
        settled = False
        outcome: Outcome = "cancelled"
        error: str | None = None
        try:
            async for chunk in backend.stream(request):
                if chunk.completion is not None:
                    # Settle before handing the final chunk on: a consumer such as
                    # complete() stops at it and may never resume this generator.
                    note = self._answered(backend)
                    if note:
                        decided = Route(backend, f"{reason}; {note}", route.score, route.threshold)
                    cost = 0.0
                    if self.ledger is not None:
                        usage = chunk.completion.usage
                        cost = self.ledger.settle(reservation, backend.name, request.agent, usage)
                    settled = True
                    self._record(
                        request,
                        decided,
                        backend.name,
                        skipped,
                        "ok",
                        None,
                        chunk.completion.usage,
                        cost,
                    )
                yield chunk
        except BaseException as e:
            # The consumer closing the stream early, or cancelling it, is no
            # error of the backend's: the decision then stays "cancelled".
            if not settled and not is_control_flow(e):
                outcome, error = "error", f"{type(e).__name__}: {e}"
            raise
        finally:
            if not settled:
                if self.ledger is not None:
                    self.ledger.release(reservation, request.agent)
                self._record(request, decided, backend.name, skipped, outcome, error)

    def _answered(self, backend: Backend) -> str | None:
        """``backend`` delivered a whole answer; a note for the decision's reason, if any.

        Called before the decision is recorded (a fallback router closes a
        circuit here and says so); the base router has nothing to add.
        """
        return None

    def _record(
        self,
        request: ChatRequest,
        route: Route,
        backend: str,
        skipped: Sequence[str],
        outcome: Outcome,
        error: str | None,
        usage: Usage | None = None,
        cost: float = 0.0,
    ) -> None:
        decision = RoutingDecision(
            router=self.name,
            backend=backend,
            reason=route.reason,
            agent=request.agent,
            tags=request.tags,
            score=route.score,
            threshold=route.threshold,
            skipped=tuple(skipped),
            outcome=outcome,
            error=error,
            usage=usage or Usage(),
            cost=cost,
        )
        self.decisions.append(decision)
        _trace_decision(decision)


def _trace_decision(decision: RoutingDecision) -> None:
    """Attach a decision to the model call's span (the current one), when tracing."""
    span = tracing.current_span()
    if span is None:
        return
    attributes = {
        "plait.route.router": decision.router,
        "plait.route.backend": decision.backend,
        "plait.route.reason": decision.reason,
        "plait.route.score": decision.score,
        "plait.route.threshold": decision.threshold,
        "plait.route.skipped": list(decision.skipped),
        "plait.route.outcome": decision.outcome,
        "plait.cost": decision.cost,
    }
    span.add_event("plait.route", attributes)
    # The first decision that served names the backend that answered and the
    # router that chose it: a fallback's failed tries are recorded before it (as
    # events only), and nested routers record the innermost one first. An outer
    # router without prices must not overwrite the inner one's cost.
    if decision.outcome == "ok" and "plait.route.router" not in span.attributes:
        span.set("plait.route.backend", decision.backend)
        span.set("plait.route.router", decision.router)
    if decision.cost > 0 or "plait.cost" not in span.attributes:
        span.set("plait.cost", decision.cost)
