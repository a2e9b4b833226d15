"""Per-run model accounting: every model call of a workflow run, with its usage and cost.

A loaded :class:`~plait.graphs.workflows.Workflow` may run many times at once,
so nothing a run counts lives on the shared backends. The run object
(``_kinds.RunContext``) holds the run's :class:`RunMeter` and its own router
ledger, made when the run starts. The one context variable here exists because
code below the workflow layer must find them: a :class:`MeteredBackend` (a
backend wrapper, shared by every run) reports each call to the meter of the run
it serves, and the routers (``plait.backends.routing``, shared too) book spend
through :class:`RunLedger` on that run's ledger, so a router ``budget`` caps
one run, not every run of the loaded file together. :func:`metering` sets it
for the length of a run (tasks the run starts inherit it).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from plait.backends import Backend, WrappedBackend
from plait.backends.routing import CostLedger, CostReport, Price
from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk, Usage

__all__ = [
    "MeteredBackend",
    "ModelCall",
    "RunLedger",
    "RunMeter",
    "count_calls",
    "metering",
]


class ModelCall(BaseModel):
    """One model request of a workflow run, for progress and cost accounting.

    A request the model-call cache answered has ``usage.cache_hits == 1``, no
    tokens and no cost; ``cost_saved`` is what its first call cost.
    """

    model_config = ConfigDict(frozen=True)

    backend: str
    agent: str | None
    usage: Usage
    cost: float
    cost_saved: float = 0.0


@dataclass
class RunMeter:
    """One run's tally of model calls; ``on_call`` sees each call as it finishes."""

    on_call: Callable[[ModelCall], None] | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    cost_saved: float = 0.0

    def add(self, call: ModelCall) -> None:
        self.usage = self.usage + call.usage
        self.cost += call.cost
        self.cost_saved += call.cost_saved
        if self.on_call is not None:
            self.on_call(call)


@dataclass(frozen=True)
class _RunAccounts:
    """What the shared backends and routers must find of the run they serve."""

    meter: RunMeter
    ledger: CostLedger | None


# Set by ``metering`` for one run; read by MeteredBackend and RunLedger (see above).
_CURRENT: ContextVar[_RunAccounts | None] = ContextVar("plait_workflow_run", default=None)


@contextlib.contextmanager
def metering(meter: RunMeter, ledger: CostLedger | None = None) -> Iterator[RunMeter]:
    """Count the model calls made in this context (one workflow run) on ``meter``.

    ``ledger``: the run's own router ledger (:meth:`RunLedger.for_run`), on
    which the routers book this run's spend; ``None``: they book on their
    shared ledger (a Ray worker's task, whose routers stay on the driver).
    """
    token = _CURRENT.set(_RunAccounts(meter, ledger))
    try:
        yield meter
    finally:
        _CURRENT.reset(token)


def count_calls(calls: Iterable[ModelCall]) -> None:
    """Count model calls made elsewhere (in a Ray worker) on the current run's meter."""
    accounts = _CURRENT.get()
    if accounts is not None:
        for call in calls:
            accounts.meter.add(call)


class MeteredBackend(WrappedBackend):
    """Reports each finished request's usage and cost to the current run's meter.

    Calls made outside a run (an agent used directly) are priced but not counted.
    """

    def __init__(self, wrapped: Backend, price: Price) -> None:
        super().__init__(wrapped)
        self.price = price

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        async with contextlib.aclosing(self.wrapped.stream(request)) as chunks:
            async for chunk in chunks:
                if chunk.completion is not None:
                    # Before handing it on: a consumer may stop at the final chunk.
                    self._report(request, chunk.completion)
                yield chunk

    async def complete(self, request: ChatRequest) -> Completion:
        completion = await self.wrapped.complete(request)
        self._report(request, completion)
        return completion

    def _report(self, request: ChatRequest, completion: Completion) -> None:
        accounts = _CURRENT.get()
        if accounts is None:
            return
        usage = completion.usage
        call = ModelCall(
            backend=self.name,
            agent=request.agent,
            usage=usage,
            cost=self.price.cost(usage),
            cost_saved=self.price.saved(usage),
        )
        accounts.meter.add(call)


class RunLedger(CostLedger):
    """The ledger a workflow's routers share: each run books on its own copy of it.

    A run makes its copy (:meth:`for_run`: same prices and caps, nothing spent)
    when it starts and hands it to :func:`metering`; calls outside a run book
    on this ledger itself.
    """

    def for_run(self) -> CostLedger:
        """A fresh ledger with this one's prices and caps, for one run."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return CostLedger(**{k: v for k, v in fields.items() if not k.startswith("_")})

    def _run(self) -> CostLedger | None:
        accounts = _CURRENT.get()
        return accounts.ledger if accounts is not None else None

    def would_exceed(self, backend: str, request: ChatRequest) -> str | None:
        run = self._run()
        return run.would_exceed(backend, request) if run else super().would_exceed(backend, request)

    def reserve(self, backend: str, request: ChatRequest) -> float:
        run = self._run()
        return run.reserve(backend, request) if run else super().reserve(backend, request)

    def release(self, reservation: float, agent: str | None) -> None:
        run = self._run()
        return run.release(reservation, agent) if run else super().release(reservation, agent)

    def settle(self, reservation: float, backend: str, agent: str | None, usage: Usage) -> float:
        run = self._run()
        if run is None:
            return super().settle(reservation, backend, agent, usage)
        return run.settle(reservation, backend, agent, usage)

    @property
    def total_cost(self) -> float:
        run = self._run()
        return run.total_cost if run else super().total_cost

    @property
    def reserved(self) -> float:
        run = self._run()
        return run.reserved if run else super().reserved

    def report(self) -> CostReport:
        run = self._run()
        return run.report() if run else super().report()
