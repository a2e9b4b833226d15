"""``CachedBackend``: answers a request it has seen before from a store, not the model.

A request is keyed by the SHA-256 of its canonical form: the messages, tools,
tool choice, response schema, the sampling settings that change the answer, who
asks (``agent`` and ``tags``: a router chooses by them) and the wrapped
backend's :meth:`~plait.backends.Backend.cache_identity` (for a local model the
hash of its GGUF file). Only deterministic requests are cached unless asked:
temperature 0 (the request's, else the backend's) or a fixed seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plait import tracing
from plait._span_attributes import cache_attributes
from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk, Timings, Usage
from plait.provenance import current

from ._base import Backend
from ._cache_store import CacheEntry, CacheStore
from ._wrapped import WrappedBackend

if TYPE_CHECKING:
    from .routing import Price

__all__ = ["CachedBackend", "is_deterministic", "request_key"]

_KEY_FORMAT = 2
"""Bumped when the key's layout changes, so old entries are never read as new ones
(2: the delivery fields, ``ChatRequest.DELIVERY_FIELDS``, left out)."""


def is_deterministic(request: ChatRequest, default_temperature: float | None) -> bool:
    """Whether a request's answer is fixed: temperature 0 or a fixed seed.

    Args:
        request: the request.
        default_temperature: the backend's temperature when the request sets none
            (``None``: unknown, so only the request's own settings count).
    """
    temperature = request.temperature if request.temperature is not None else default_temperature
    return temperature == 0 or request.seed is not None


def request_key(request: ChatRequest, identity: dict[str, Any]) -> str:
    """The cache key of ``request`` on a backend of ``identity`` (files already hashed).

    Greedy decoding (temperature 0) ignores ``top_p``, ``top_k`` and ``seed``,
    so they are left out of its key: requests differing only there share an answer.
    How a request is delivered (its priority, whether a refused connect is
    retried) changes no answer, so :attr:`ChatRequest.DELIVERY_FIELDS` never
    enter a key.
    """
    temperature = request.temperature
    if temperature is None:
        temperature = identity.get("temperature")
    body = request.model_dump(mode="json", exclude={"temperature", *ChatRequest.DELIVERY_FIELDS})
    body["temperature"] = temperature
    if temperature == 0:
        for name in ("top_p", "top_k", "seed"):
            body.pop(name)
    canonical = json.dumps(
        {"format": _KEY_FORMAT, "backend": identity, "request": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class CachedBackend(WrappedBackend):
    """Serves repeated requests from a :class:`~plait.backends.CacheStore`.

    A finished answer is stored with the sources its caller had read
    (:func:`plait.provenance.current`), so a hit comes back with that provenance
    in :attr:`~plait.completions.Completion.sources`, with its usage marked
    cached (no tokens; ``cache_hits=1`` and the first call's usage in
    ``cache_saved``), and the current span gets ``plait.cache.hit`` (and the cost
    saved when ``price`` is given). A streamed answer is stored only once its
    final chunk arrived: a stream cut short or cancelled stores nothing.

    Args:
        wrapped: the backend that answers misses (wrap a model backend itself,
            below any router, so its identity is the model's).
        store: where answers are kept (:class:`~plait.backends.SQLiteCacheStore`).
        cache_nondeterministic: also store answers sampled at temperature > 0
            without a seed (replaying one sample forever).
        price: prices the cost a hit saved (``None``: not priced).
    """

    def __init__(
        self,
        wrapped: Backend,
        store: CacheStore,
        *,
        cache_nondeterministic: bool = False,
        price: Price | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.store = store
        self.cache_nondeterministic = cache_nondeterministic
        self.price = price
        self._identity: dict[str, Any] | None = None

    def __getnewargs__(self) -> tuple[Backend, CacheStore]:  # type: ignore[override]
        return (self.wrapped, self.store)

    async def identity(self) -> dict[str, Any]:
        """The wrapped backend's identity with its files replaced by their hashes (once)."""
        if self._identity is None:
            resolved: dict[str, Any] = {}
            for name, value in self.wrapped.cache_identity().items():
                resolved[name] = (
                    await self.store.file_hash(value) if isinstance(value, Path) else value
                )
            self._identity = resolved
        return self._identity

    async def key_of(self, request: ChatRequest) -> str | None:
        """The request's key, or ``None`` when it is not to be cached (nondeterministic)."""
        identity = await self.identity()
        if not self.cache_nondeterministic and not is_deterministic(
            request, identity.get("temperature")
        ):
            return None
        return request_key(request, identity)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        started = time.perf_counter()
        key = await self.key_of(request)
        if key is not None:
            entry = await self.store.get(key)
            if entry is not None:
                hit = self._hit(entry, started)
                # A stored reply streams as it first did (tool-call turns stream nothing).
                text = entry.streamed if entry.streamed is not None else hit.text
                if text:
                    yield StreamChunk(delta=text)
                yield StreamChunk(completion=hit)
                return
            self._trace_miss()
        streamed: list[str] = []
        async with contextlib.aclosing(self.wrapped.stream(request)) as chunks:
            async for chunk in chunks:
                if chunk.completion is not None and key is not None:
                    # Before handing it on: a consumer may stop at the final chunk.
                    await self._store(key, chunk.completion, "".join(streamed))
                streamed.append(chunk.delta)
                yield chunk

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        key = await self.key_of(request)
        if key is not None:
            entry = await self.store.get(key)
            if entry is not None:
                return self._hit(entry, started)
            self._trace_miss()
        completion = await self.wrapped.complete(request)
        if key is not None:
            await self._store(key, completion, None)
        return completion

    def _hit(self, entry: CacheEntry, started: float) -> Completion:
        stored = entry.completion
        usage = Usage(cache_hits=1, cache_saved=stored.usage)
        saved_cost = self.price.saved(usage) if self.price is not None else None
        span = tracing.current_span()
        if span is not None:
            span.set_attributes(cache_attributes(True, saved_cost))
        took = time.perf_counter() - started
        return stored.model_copy(
            update={
                "usage": usage,
                "timings": Timings(first_token_s=took, total_s=took),
                "sources": entry.sources,
            }
        )

    def _trace_miss(self) -> None:
        span = tracing.current_span()
        if span is not None:
            span.set_attributes(cache_attributes(False))

    async def _store(self, key: str, completion: Completion, streamed: str | None) -> None:
        if completion.finish_reason == "cancelled":
            return  # cut short: not the answer the request would get
        if completion.usage.cache_hits:  # an inner cache's hit: keep the first call's usage
            completion = completion.model_copy(
                update={"usage": completion.usage.cache_saved or Usage()}
            )
        sources = (current() or frozenset()) | completion.sources
        cost = self.price.cost(completion.usage) if self.price is not None else 0.0
        entry = CacheEntry(
            completion=completion.model_copy(update={"sources": frozenset()}),
            streamed=streamed,
            sources=sources,
            cost=cost,
        )
        await self.store.put(key, entry, backend=self.name)
