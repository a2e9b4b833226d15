"""The backend contract every model backend implements."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from plait._sync import iterate_sync, run_sync
from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk
from plait.errors import BackendError
from plait.messages import Message

__all__ = ["Backend", "Capabilities", "Pinnable"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do natively.

    Attributes:
        native_tool_calls: the model/server emits tool calls itself (otherwise the
            backend must constrain decoding to produce them, or cannot).
        json_schema_output: answers can be forced to validate against a schema.
        embeddings: ``embed()`` works.
        prefix_cache: prompts sharing a prefix with earlier ones skip its prefill.
    """

    native_tool_calls: bool = False
    json_schema_output: bool = False
    embeddings: bool = False
    prefix_cache: bool = False


class Backend(ABC):
    """A chat model behind one async interface.

    Implement :meth:`stream`; :meth:`complete` collects it (override it when a
    backend has a cheaper non-streaming path). The ``*_sync`` helpers are for
    scripts and REPLs that do not run an event loop.
    """

    name: str = "backend"
    capabilities: Capabilities = Capabilities()

    @abstractmethod
    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        """Yield text deltas, then one final chunk carrying the whole completion.

        Implement it as an ``async def`` with ``yield``: callers close the
        generator (``aclose()``) as soon as they have the completion.
        """

    async def complete(self, request: ChatRequest) -> Completion:
        """Answer a request and return the finished completion."""
        # Close the stream as soon as the final chunk is in, so a wrapper's
        # cleanup (accounting, locks) runs now rather than at garbage collection.
        async with contextlib.aclosing(self.stream(request)) as chunks:
            async for chunk in chunks:
                if chunk.completion is not None:
                    return chunk.completion
        raise BackendError(f"backend {self.name!r} ended its stream without a completion")

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Return one embedding vector per text.

        Raises:
            BackendError: this backend has no embedding support.
        """
        raise BackendError(f"backend {self.name!r} does not provide embeddings")

    async def aclose(self) -> None:
        """Release connections or engines held by this backend."""
        return None

    def cache_identity(self) -> dict[str, Any]:
        """What makes this backend's answers what they are, for a model-call cache key.

        JSON values, except that a :class:`~pathlib.Path` names a file whose
        contents define the model (a GGUF file): the cache keys it by its hash.
        ``temperature`` is the temperature used when a request sets none (left out
        when unknown, so only requests that fix it count as deterministic).
        Backends whose answers depend on more than their class and name (a model
        file, a server's model) override this.
        """
        cls = type(self)
        return {"backend": f"{cls.__module__}.{cls.__qualname__}", "name": self.name}

    def complete_sync(self, request: ChatRequest) -> Completion:
        """Blocking :meth:`complete`, for code that has no event loop running."""
        return run_sync(
            self.complete(request), name="complete_sync()", instead="await backend.complete()"
        )

    def stream_sync(self, request: ChatRequest) -> Iterator[StreamChunk]:
        """Blocking :meth:`stream`, for code that has no event loop running."""
        return iterate_sync(
            self.stream(request), name="stream_sync()", instead="async for ... in backend.stream()"
        )


@runtime_checkable
class Pinnable(Protocol):
    """A backend that can keep a prompt prefix resident in its KV cache.

    Pinning a team's shared system prompt once lets every worker's request
    reuse its prefill (the local engine does this; HTTP backends cannot).
    ``isinstance(backend, Pinnable)`` says whether a backend can.
    """

    async def pin(self, prefix: str | Sequence[Message], *, ttl_s: float | None = None) -> Any:
        """Prefill ``prefix`` and keep it resident; returns a handle for :meth:`unpin`."""
        ...

    async def unpin(self, pinned: Any) -> bool:
        """Release a handle from :meth:`pin`; False when it was already released."""
        ...
