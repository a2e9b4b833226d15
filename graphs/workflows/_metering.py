"""Per-run model accounting: every model call of a workflow run, with its usage and cost.

A loaded :class:`~plait.graphs.workflows.Workflow` may run many times at once,
so nothing a run counts lives on the shared backends: each backend's meter
reports to the :class:`RunMeter` of the run it serves, found in a context
variable that ``Workflow.arun`` sets (tasks the run starts inherit it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from plait.backends import Backend, WrappedBackend
from plait.backends.routing import Price
from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk, Usage

__all__ = ["Metered", "ModelCall", "RunMeter", "metering"]


class ModelCall(BaseModel):
    """One model request of a workflow run, for progress and cost accounting."""

    model_config = ConfigDict(frozen=True)

    backend: str
    agent: str | None
    usage: Usage
    cost: float


@dataclass
class RunMeter:
    """One run's tally of model calls; ``on_call`` sees each call as it finishes."""

    on_call: Callable[[ModelCall], None] | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0

    def add(self, call: ModelCall) -> None:
        self.usage = self.usage + call.usage
        self.cost += call.cost
        if self.on_call is not None:
            self.on_call(call)


_CURRENT: ContextVar[RunMeter | None] = ContextVar("plait_workflow_run_meter", default=None)


@contextlib.contextmanager
def metering(meter: RunMeter) -> Iterator[RunMeter]:
    """Count the model calls made in this context (one workflow run) on ``meter``."""
    token = _CURRENT.set(meter)
    try:
        yield meter
    finally:
        _CURRENT.reset(token)


class Metered(WrappedBackend):
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
        meter = _CURRENT.get()
        if meter is None:
            return
        usage = completion.usage
        call = ModelCall(
            backend=self.name, agent=request.agent, usage=usage, cost=self.price.cost(usage)
        )
        meter.add(call)
