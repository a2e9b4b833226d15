"""Model access: the backend contract (``Backend``; ``WrappedBackend`` for backends
that decorate another; ``Pinnable`` for those that can pin a prompt prefix), the
model-call cache (``CachedBackend`` over a ``CacheStore``), the local llama.cpp
engine, the OpenAI-compatible HTTP backend, routers (:mod:`plait.backends.routing`)
and test doubles (:mod:`plait.backends.testing`).
"""

from plait._lazy import moved_names

from ._base import Backend, Capabilities, Pinnable
from ._cache import CachedBackend
from ._cache_store import CacheEntry, CacheStats, CacheStore, SQLiteCacheStore
from ._wrapped import WrappedBackend
from .local import EngineStats, LocalBackend, PinnedPrefix, RequestStats, default_model_path
from .openai import _MOVED, OpenAIBackend

__all__ = [
    "Backend",
    "CacheEntry",
    "CacheStats",
    "CacheStore",
    "CachedBackend",
    "Capabilities",
    "EngineStats",
    "LocalBackend",
    "OpenAIBackend",
    "Pinnable",
    "PinnedPrefix",
    "RequestStats",
    "SQLiteCacheStore",
    "WrappedBackend",
    "default_model_path",
]

__getattr__ = moved_names(__name__, _MOVED)  # RetryPolicy moved to plait.retry
