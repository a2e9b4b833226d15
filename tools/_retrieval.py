"""Tool retrieval for large toolsets: offer the model only the top-k relevant tools.

Toolshed-style: tool descriptions are indexed once; each step asks for the tools
most relevant to the current query. Scoring is pluggable: :class:`LexicalScorer`
(BM25 over words, no model needed) ships now; :class:`EmbeddingScorer` takes
any async embed function (an offline embedder, ``backend.embed``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from plait.errors import ConfigError

from ._registry import Toolset
from ._tool import Tool

__all__ = ["EmbeddingScorer", "LexicalScorer", "Scorer", "ToolRetriever", "tool_document"]

_WORD = re.compile(r"[a-z0-9]+")


@runtime_checkable
class Scorer(Protocol):
    """Scores documents against a query; higher means more relevant."""

    async def index(self, documents: Sequence[str]) -> None:
        """Prepare to score these documents (called once per toolset)."""
        ...

    async def scores(self, query: str) -> list[float]:
        """One score per indexed document, in index order."""
        ...


def _words(text: str) -> list[str]:
    # Split snake_case and dotted names too: "web.search_news" -> web search news.
    return _WORD.findall(text.lower().replace("_", " "))


class LexicalScorer:
    """BM25 over words of tool names and descriptions.

    Args:
        k1: term-frequency saturation.
        b: length normalisation.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._docs: list[Counter[str]] = []
        self._idf: dict[str, float] = {}
        self._avg_len = 0.0

    async def index(self, documents: Sequence[str]) -> None:
        self._docs = [Counter(_words(d)) for d in documents]
        n = len(self._docs)
        df: Counter[str] = Counter()
        for doc in self._docs:
            df.update(doc.keys())
        self._idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}
        self._avg_len = sum(sum(d.values()) for d in self._docs) / n if n else 0.0

    async def scores(self, query: str) -> list[float]:
        terms = set(_words(query))
        out = []
        for doc in self._docs:
            length = sum(doc.values())
            score = 0.0
            for term in terms & doc.keys():
                tf = doc[term]
                norm = tf + self.k1 * (1 - self.b + self.b * length / (self._avg_len or 1))
                score += self._idf[term] * tf * (self.k1 + 1) / norm
            out.append(score)
        return out


class EmbeddingScorer:
    """Cosine similarity between embeddings of the query and of each document.

    Args:
        embed: an async function from texts to vectors (one per text).
    """

    def __init__(self, embed: Callable[[Sequence[str]], Awaitable[list[list[float]]]]) -> None:
        self._embed = embed
        self._vectors: list[list[float]] = []

    async def index(self, documents: Sequence[str]) -> None:
        self._vectors = await self._embed(list(documents)) if documents else []

    async def scores(self, query: str) -> list[float]:
        (q,) = await self._embed([query])
        return [_cosine(q, v) for v in self._vectors]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def tool_document(item: Tool) -> str:
    """The text a tool is indexed under: its name, description and argument docs."""
    args = " ".join(
        f"{name} {prop.get('description', '')}"
        for name, prop in item.parameters.get("properties", {}).items()
    )
    return f"{item.name} {item.description} {args}"


class ToolRetriever:
    """Picks the ``k`` tools most relevant to a query from a large toolset.

    Args:
        tools: the full toolset.
        k: how many tools to offer per step.
        scorer: how to score (default: :class:`LexicalScorer`).
        always: tool names offered every step regardless of score.
    """

    def __init__(
        self,
        tools: Toolset,
        *,
        k: int = 5,
        scorer: Scorer | None = None,
        always: Sequence[str] = (),
    ) -> None:
        if k < 1:
            raise ConfigError(f"ToolRetriever k must be at least 1, got {k}")
        self.tools = tools
        self.k = k
        self.scorer: Scorer = scorer or LexicalScorer()
        self.always = tuple(always)
        self._indexed: list[Tool] | None = None

    async def select(self, query: str) -> Toolset:
        """The pinned tools, then the best-scoring others, at most ``k`` (ties keep order)."""
        if self._indexed is None:
            self._indexed = list(self.tools)
            await self.scorer.index([tool_document(t) for t in self._indexed])
        scores = await self.scorer.scores(query)
        pinned = [t for t in self._indexed if t.name in self.always]
        ranked = sorted(
            (i for i, t in enumerate(self._indexed) if t.name not in self.always),
            key=lambda i: -scores[i],
        )
        chosen = pinned + [self._indexed[i] for i in ranked]
        return Toolset(chosen[: max(self.k, len(pinned))])
