"""Prices, running cost per run / agent / backend, and hard budget caps.

Cost has one rule, here: :func:`backend_price` picks the price a backend's calls
are billed at and :meth:`Price.cost` prices a :class:`~plait.completions.Usage`
(:meth:`Price.saved` what a model-call cache hit saved). The ledger, the agents'
turns, hiring estimates, the model-call cache, the workflow meters and the REPL's
tallies all call these, so one call never has two costs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from plait.chat import ChatRequest
from plait.completions import Usage
from plait.errors import BudgetExceeded, ConfigError

if TYPE_CHECKING:
    from plait.backends import Backend

__all__ = ["CostLedger", "CostReport", "Price", "backend_price", "estimate_prompt_tokens"]


class Price(BaseModel):
    """What a backend charges, in currency units per 1,000 tokens (local models: 0).

    ``cached_prompt_per_1k`` prices prompt tokens the server served from its prefix
    cache (hosted APIs bill them at a discount); ``None`` bills them as prompt tokens.
    """

    model_config = ConfigDict(frozen=True)

    prompt_per_1k: float = Field(default=0.0, ge=0.0)
    completion_per_1k: float = Field(default=0.0, ge=0.0)
    cached_prompt_per_1k: float | None = Field(default=None, ge=0.0)

    def cost(self, usage: Usage) -> float:
        """The price of one request's token usage: the one place plait prices tokens."""
        cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
        cached_rate = (
            self.prompt_per_1k if self.cached_prompt_per_1k is None else (self.cached_prompt_per_1k)
        )
        return (
            (usage.prompt_tokens - cached) * self.prompt_per_1k
            + cached * cached_rate
            + usage.completion_tokens * self.completion_per_1k
        ) / 1000.0

    def saved(self, usage: Usage) -> float:
        """What a model-call cache hit saved: the cost its stored answer had (0: no hit)."""
        return self.cost(usage.cache_saved) if usage.cache_saved is not None else 0.0


def backend_price(backend: Backend | str, prices: Mapping[str, Price] | None = None) -> Price:
    """The price ``backend``'s calls are billed at.

    A price listed under the backend's name wins; else a backend object's own
    ``price`` attribute (a priced wrapper: a workflow's meter, the model-call
    cache); else the call is free (local models).

    Args:
        backend: the backend, or its name (a name has no own price).
        prices: prices by backend name (an agent's ``prices``, a ledger's).
    """
    name = backend if isinstance(backend, str) else backend.name
    listed = (prices or {}).get(name)
    if listed is not None:
        return listed
    own = None if isinstance(backend, str) else getattr(backend, "price", None)
    return own if isinstance(own, Price) else _FREE


class CostReport(BaseModel):
    """A snapshot of what has been spent so far."""

    model_config = ConfigDict(frozen=True)

    total_cost: float
    calls: int
    usage: Usage
    cost_by_agent: dict[str, float]
    cost_by_backend: dict[str, float]
    usage_by_backend: dict[str, Usage]


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """A cheap upper-leaning estimate of a request's prompt tokens (about 3 characters each).

    Real tokenizers average near 4 characters per token on English; 3 errs towards
    over-estimating so a budget check rarely lets a call through that then overshoots.
    """
    chars = sum(len(getattr(m, "content", None) or "") + 8 for m in request.messages)
    chars += sum(len(t.model_dump_json()) for t in request.tools)
    if request.response_schema is not None:
        chars += len(str(request.response_schema))
    return math.ceil(chars / 3)


@dataclass
class CostLedger:
    """Running cost accounting with hard caps, shared by every router of a run.

    Before a call, :meth:`reserve` estimates its worst-case cost (estimated prompt
    tokens plus ``max_tokens`` of completion) and raises :class:`BudgetExceeded`
    if spent + already reserved + this estimate would pass a cap; the reservation
    holds the money while the call runs, so concurrent calls cannot overshoot
    together. :meth:`settle` replaces the reservation with the real cost.

    Args:
        prices: price per backend name; backends not listed cost nothing (local models).
        budget: cap on the total cost (``None``: no cap).
        agent_budgets: caps per agent name (``ChatRequest.agent``).
        default_max_tokens: completion tokens assumed for requests without ``max_tokens``.
    """

    prices: Mapping[str, Price] = field(default_factory=dict)
    budget: float | None = None
    agent_budgets: Mapping[str, float] = field(default_factory=dict)
    default_max_tokens: int = 1024
    _spent: float = 0.0
    _reserved: float = 0.0
    _calls: int = 0
    _usage: Usage = field(default_factory=Usage)
    _by_agent: dict[str, float] = field(default_factory=dict)
    _reserved_by_agent: dict[str, float] = field(default_factory=dict)
    _by_backend: dict[str, float] = field(default_factory=dict)
    _usage_by_backend: dict[str, Usage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.budget is not None and self.budget < 0:
            raise ConfigError(f"CostLedger budget must not be negative, got {self.budget}")
        for agent, cap in self.agent_budgets.items():
            if cap < 0:
                raise ConfigError(f"CostLedger budget of agent {agent!r} is negative ({cap})")

    def price(self, backend: str) -> Price:
        """The price of a backend by name (free when not listed)."""
        return backend_price(backend, self.prices)

    def estimate(self, backend: str, request: ChatRequest) -> float:
        """Worst-case cost of ``request`` on ``backend`` (all of ``max_tokens`` generated)."""
        usage = Usage(
            prompt_tokens=estimate_prompt_tokens(request),
            completion_tokens=request.max_tokens or self.default_max_tokens,
        )
        return self.price(backend).cost(usage)

    def would_exceed(self, backend: str, request: ChatRequest) -> str | None:
        """Why ``request`` on ``backend`` would pass a cap, or ``None`` if it fits."""
        estimate = self.estimate(backend, request)
        if estimate == 0.0:
            return None
        if self.budget is not None and self._spent + self._reserved + estimate > self.budget:
            return (
                f"a call to {backend!r} may cost up to {estimate:.6g}, and {self._spent:.6g} spent"
                f" + {self._reserved:.6g} reserved would pass the run budget of {self.budget:.6g}"
            )
        agent = request.agent
        if agent is not None and agent in self.agent_budgets:
            cap = self.agent_budgets[agent]
            used = self._by_agent.get(agent, 0.0) + self._reserved_by_agent.get(agent, 0.0)
            if used + estimate > cap:
                return (
                    f"a call to {backend!r} may cost up to {estimate:.6g}, and agent {agent!r}"
                    f" has used {used:.6g} of its budget of {cap:.6g}"
                )
        return None

    def reserve(self, backend: str, request: ChatRequest) -> float:
        """Hold the worst-case cost of a call, or refuse it.

        Raises:
            BudgetExceeded: the call could pass the run's or the agent's cap.
        """
        problem = self.would_exceed(backend, request)
        if problem is not None:
            raise BudgetExceeded(problem)
        estimate = self.estimate(backend, request)
        self._reserved += estimate
        if request.agent is not None:
            held = self._reserved_by_agent.get(request.agent, 0.0)
            self._reserved_by_agent[request.agent] = held + estimate
        return estimate

    def release(self, reservation: float, agent: str | None) -> None:
        """Give back a reservation whose call produced nothing."""
        self._reserved = max(0.0, self._reserved - reservation)
        if agent is not None and agent in self._reserved_by_agent:
            self._reserved_by_agent[agent] = max(0.0, self._reserved_by_agent[agent] - reservation)

    def settle(self, reservation: float, backend: str, agent: str | None, usage: Usage) -> float:
        """Replace a reservation with the real cost of the finished call; return that cost."""
        self.release(reservation, agent)
        cost = self.price(backend).cost(usage)
        self._spent += cost
        self._calls += 1
        self._usage = self._usage + usage
        if agent is not None:
            self._by_agent[agent] = self._by_agent.get(agent, 0.0) + cost
        self._by_backend[backend] = self._by_backend.get(backend, 0.0) + cost
        self._usage_by_backend[backend] = self._usage_by_backend.get(backend, Usage()) + usage
        return cost

    @property
    def total_cost(self) -> float:
        """Cost of every settled call."""
        return self._spent

    @property
    def reserved(self) -> float:
        """Worst-case cost held by calls still running."""
        return self._reserved

    def report(self) -> CostReport:
        """What has been spent, in all and per agent and backend."""
        return CostReport(
            total_cost=self._spent,
            calls=self._calls,
            usage=self._usage,
            cost_by_agent=dict(self._by_agent),
            cost_by_backend=dict(self._by_backend),
            usage_by_backend=dict(self._usage_by_backend),
        )


_FREE = Price()
