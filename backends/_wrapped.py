"""``WrappedBackend``: a backend that holds another and forwards to it.

Metering, overrides and other decorations subclass it and override only what
they change (usually :meth:`~WrappedBackend.stream` and
:meth:`~WrappedBackend.complete`); everything else is forwarded by name, never
through ``__getattr__``, so a wrapper's surface is what its class says.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk
from plait.messages import Message

from ._base import Backend, Capabilities, Pinnable

__all__ = ["WrappedBackend"]


class WrappedBackend(Backend):
    """A backend that forwards every call to ``wrapped``.

    When the wrapped backend is :class:`~plait.backends.Pinnable`, the wrapper
    is too (its ``pin``/``unpin`` forward), so ``isinstance(wrapper, Pinnable)``
    answers for the backend underneath. Subclasses take the wrapped backend as
    their first positional argument and call ``super().__init__(wrapped)``.

    Args:
        wrapped: the backend answering the requests.

    Attributes:
        wrapped: the backend answering the requests.
    """

    def __new__(cls, wrapped: Backend, /, *args: Any, **kwargs: Any) -> WrappedBackend:
        # The pin methods exist only where they work: a runtime-checkable protocol
        # looks at attributes, so a wrapper of a non-pinnable backend must lack them.
        if isinstance(wrapped, Pinnable) and not issubclass(cls, _ForwardsPins):
            cls = _pinnable_variant(cls)
        return super().__new__(cls)

    def __init__(self, wrapped: Backend, /) -> None:
        self.wrapped = wrapped

    def __getnewargs__(self) -> tuple[Backend]:
        # A copy (pickled for a Ray worker) is made through __new__ as well.
        return (self.wrapped,)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.wrapped.name

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.wrapped.capabilities

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        # Close the inner stream with this one, so its cleanup (a router's
        # settlement, an engine slot) runs when the consumer stops.
        async with contextlib.aclosing(self.wrapped.stream(request)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def complete(self, request: ChatRequest) -> Completion:
        return await self.wrapped.complete(request)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.wrapped.embed(texts)

    async def aclose(self) -> None:
        await self.wrapped.aclose()

    def cache_identity(self) -> dict[str, Any]:
        # A decoration that changes no answer (metering, accounting) is the same model.
        return self.wrapped.cache_identity()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.wrapped!r})"


class _ForwardsPins(WrappedBackend):
    """The pin methods of a wrapper whose wrapped backend is pinnable."""

    async def pin(self, prefix: str | Sequence[Message], *, ttl_s: float | None = None) -> Any:
        """Pin ``prefix`` on the wrapped backend."""
        assert isinstance(self.wrapped, Pinnable)  # chosen in __new__
        return await self.wrapped.pin(prefix, ttl_s=ttl_s)

    async def unpin(self, pinned: Any) -> bool:
        """Release a pin of the wrapped backend."""
        assert isinstance(self.wrapped, Pinnable)
        return await self.wrapped.unpin(pinned)


@functools.cache
def _pinnable_variant(cls: type[WrappedBackend]) -> type[WrappedBackend]:
    # The subclass comes first in the MRO, so its own overrides still win.
    return type(cls.__name__, (cls, _ForwardsPins), {"__module__": cls.__module__})
