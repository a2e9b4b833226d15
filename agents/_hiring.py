"""Hiring under a budget (HASHIRU): local-first backend choice, ledger routing, team prefixes.

A supervisor hires each worker on the cheapest backend tier that fits the
remaining budget (tiers are ordered local first), escalates a worker to the next
tier when a review asks for it, and meters every model call through the run's
:class:`~plait.backends.routing.CostLedger`, so a call that could pass the cap is
refused before it is sent. Workers on a backend with pinned prefixes (the local
engine) share one pinned team prefix, released with the last worker using it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from plait.backends import Backend, Capabilities, Pinnable
from plait.backends.routing import CostLedger, Route, Router
from plait.chat import ChatRequest
from plait.completions import Usage
from plait.errors import ConfigError

__all__ = ["Hire", "Hiring", "LedgerRouter", "TeamPrefix"]


class LedgerRouter(Router):
    """A one-backend router: every call is checked against and booked in the team's ledger.

    The agent name on each request (the worker's name) is what spend is booked
    under, so the ledger's report gives the cost per worker. It is a router, not
    a :class:`~plait.backends.WrappedBackend`, because the router's serving path
    is the metering: the refusal before a call that could pass the budget, the
    reservation settled with the real usage, and one decision per call.
    """

    def __init__(self, backend: Backend, ledger: CostLedger, reason: str) -> None:
        super().__init__(name=f"metered:{backend.name}", ledger=ledger)
        self.inner = backend
        self._reason = reason

    def backends(self) -> Sequence[Backend]:
        return (self.inner,)

    async def choose(self, request: ChatRequest) -> Route:
        return Route(self.inner, self._reason)

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities


_FRAMING_CHARS = 120
"""Characters a worker prompt adds around brief, instructions and task ("You are ...")."""


@dataclass(frozen=True)
class Hire:
    """A hiring decision: which tier, which backend, and the planned cost."""

    tier: int
    backend: Backend
    estimate: float


@dataclass
class Hiring:
    """Chooses worker backends local-first within a run budget.

    Args:
        tiers: backends from cheapest (local) to strongest; escalation moves up.
        ledger: prices, the budget cap and the running spend.
        expected_turns: model turns a worker is planned for (the cost model).
        turn_tokens: completion tokens planned per turn (a worker's ``max_turn_tokens``).
    """

    tiers: Sequence[Backend]
    ledger: CostLedger
    expected_turns: int = 1
    turn_tokens: int = 256
    _committed: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ConfigError("a supervisor needs at least one worker backend tier")
        if self.expected_turns < 1 or self.turn_tokens < 1:
            raise ConfigError("Hiring.expected_turns and turn_tokens must be at least 1")

    def estimate(self, backend: Backend, prompt_chars: int) -> float:
        """Planned cost of one worker on ``backend`` for a prompt of ``prompt_chars``."""
        # Same worst case as the ledger's per-call reservation (about 3 characters a
        # token, plus message framing), so a hired worker's calls fit when it runs.
        prompt_tokens = (prompt_chars + _FRAMING_CHARS) // 3 + 1
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=self.turn_tokens)
        return self.ledger.price(backend.name).cost(usage) * self.expected_turns

    def choose(
        self, prompt_chars: int, start_tier: int, *, replacing: Hire | None = None
    ) -> tuple[Hire | None, list[str]]:
        """The cheapest tier from ``start_tier`` up that fits the budget, and what was skipped.

        The budget counts money spent, reserved by running calls, and planned for
        workers already hired but not finished, so parallel hires cannot overshoot.
        ``replacing`` (an escalation) does not count its own planned cost, since the
        old hire is released once the new one is made.
        """
        skipped: list[str] = []
        budget = self.ledger.budget
        for tier in range(start_tier, len(self.tiers)):
            backend = self.tiers[tier]
            estimate = self.estimate(backend, prompt_chars)
            planned = self.ledger.total_cost + self.ledger.reserved + self._committed
            if replacing is not None:
                planned -= replacing.estimate
            if budget is not None and estimate > 0 and planned + estimate > budget:
                skipped.append(
                    f"{backend.name}: planned {estimate:.6g} with {planned:.6g} already spent or"
                    f" committed would pass the budget of {budget:.6g}"
                )
                continue
            self._committed += estimate
            return Hire(tier, backend, estimate), skipped
        return None, skipped

    def finished(self, hire: Hire) -> None:
        """A hired worker is done: its planned cost is replaced by what the ledger booked."""
        self._committed = max(0.0, self._committed - hire.estimate)


@dataclass
class TeamPrefix:
    """The team's shared prompt prefix, pinned once per backend while workers use it.

    Workers' system prompts start with the team brief (shared part first), so on
    a backend with a prefix cache N workers cost one prefill of it. The first
    worker hired on a pinnable backend pins it; the last one released unpins it.
    """

    text: str
    _pins: dict[int, tuple[Pinnable, Any, int]] = field(default_factory=dict, init=False)

    async def acquire(self, backend: Backend) -> bool:
        """Count a worker on ``backend``; pin the prefix for the first. True if pinned."""
        if not self.text.strip() or not isinstance(backend, Pinnable):
            return False
        key = id(backend)
        if key in self._pins:
            b, pin, refs = self._pins[key]
            self._pins[key] = (b, pin, refs + 1)
            return True
        pin = await backend.pin(self.text)
        self._pins[key] = (backend, pin, 1)
        return True

    async def release(self, backend: Backend) -> bool:
        """Uncount a worker; unpin when it was the last. True if this call unpinned."""
        key = id(backend)
        if key not in self._pins:
            return False
        b, pin, refs = self._pins[key]
        if refs > 1:
            self._pins[key] = (b, pin, refs - 1)
            return False
        del self._pins[key]
        await b.unpin(pin)
        return True

    async def release_all(self) -> None:
        """Unpin everything still pinned (the run ended early)."""
        for key in list(self._pins):
            b, pin, _ = self._pins.pop(key)
            await b.unpin(pin)

    @property
    def pinned(self) -> int:
        """Backends on which the prefix is pinned now."""
        return len(self._pins)
