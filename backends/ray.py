"""Models on a Ray cluster: model-server actors with prefix-affinity routing.

Each actor holds one backend (by default a :class:`LocalBackend`, so one
llama.cpp engine per actor keeps sharing KV cache between the requests it
serves). :class:`RayModelPool` is itself a backend: it hashes a request's
shared prefix — the system message, where plait lays out shared context — and
sends it to the actor chosen by rendezvous hashing on that key, so requests
that share a prefix meet the same KV cache, and adding an actor moves only the
keys it wins. Ray is an optional extra (``pip install 'plait[ray]'``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk
from plait.errors import ConfigError

from ._base import Backend, Capabilities

__all__ = ["RayModelPool", "prefix_key"]

_LOCAL_CAPABILITIES = Capabilities(json_schema_output=True, prefix_cache=True)


def prefix_key(request: ChatRequest) -> str:
    """The hash of a request's shared prefix: its leading system message(s) and tools."""
    shared = []
    for message in request.messages:
        if message.role != "system":
            break
        shared.append(message.model_dump(mode="json"))
    body = {"system": shared, "tools": [t.model_dump(mode="json") for t in request.tools]}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class _ModelServer:
    """A Ray actor's state: one backend built on the actor's node."""

    def __init__(self, factory: Callable[[], Backend]) -> None:
        self.backend = factory()
        self.served = 0

    async def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        self.served += 1
        completion = await self.backend.complete(ChatRequest.model_validate(request))
        return completion.model_dump(mode="json")

    def served_count(self) -> int:
        return self.served


def _local_backend_factory(model_path: str | None) -> Callable[[], Backend]:
    def build() -> Backend:
        from .local import LocalBackend

        return LocalBackend(model_path)

    return build


class RayModelPool(Backend):
    """A backend answering from ``replicas`` model-server actors, by prefix affinity.

    Actors start on the first request (construction has no side effects). The
    answer arrives whole (one delta, then the completion): streaming tokens
    across processes is not done.

    Args:
        factory: builds the backend inside each actor (default: ``LocalBackend(model_path)``).
        model_path: GGUF file for the default factory (``None``: the embedded model).
        replicas: number of actors.
        num_cpus: CPUs each actor reserves.
        name: backend name in traces and decisions.
        capabilities: what the actors' backends can do (default: a local model's).
    """

    def __init__(
        self,
        factory: Callable[[], Backend] | None = None,
        *,
        model_path: str | None = None,
        replicas: int = 1,
        num_cpus: float = 1.0,
        name: str = "ray-pool",
        capabilities: Capabilities = _LOCAL_CAPABILITIES,
    ) -> None:
        if replicas < 1:
            raise ConfigError(f"RayModelPool needs at least one replica, got {replicas}")
        self.name = name
        self.capabilities = capabilities
        self.replicas = replicas
        self._factory = factory or _local_backend_factory(model_path)
        self._num_cpus = num_cpus
        self._actors: list[Any] = []

    def route(self, request: ChatRequest) -> int:
        """The actor index serving ``request`` (rendezvous hashing on its prefix key)."""
        key = prefix_key(request)
        scores = [hashlib.sha256(f"{key}:{i}".encode()).digest() for i in range(self.replicas)]
        return max(range(self.replicas), key=scores.__getitem__)

    def __getstate__(self) -> dict[str, Any]:
        """What a copy in another process (a Ray worker's) holds: this pool's actors.

        They start now if they have not, so that a copy never starts a pool of
        its own (and requests sharing a prefix still meet one KV cache).
        """
        self._ensure_actors()
        return self.__dict__.copy()

    def _ensure_actors(self) -> list[Any]:
        if not self._actors:
            try:
                import ray
            except ImportError as e:
                raise ConfigError(
                    "RayModelPool needs Ray installed: pip install 'plait[ray]'"
                ) from e
            actor = ray.remote(num_cpus=self._num_cpus)(_ModelServer)
            self._actors = [actor.remote(self._factory) for _ in range(self.replicas)]
        return self._actors

    async def served_counts(self) -> list[int]:
        """Requests each actor has served so far."""
        return [await a.served_count.remote() for a in self._ensure_actors()]

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        actor = self._ensure_actors()[self.route(request)]
        body = await actor.complete.remote(request.model_dump(mode="json"))
        completion = Completion.model_validate(body)
        if completion.text:
            yield StreamChunk(delta=completion.text)
        yield StreamChunk(completion=completion)

    async def aclose(self) -> None:
        """Stop the actors (their engines and KV caches go with them)."""
        if self._actors:
            import ray

            for actor in self._actors:
                ray.kill(actor)
            self._actors = []
