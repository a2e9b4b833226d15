"""How hard is a request? Cheap text features, or a small model asked to judge."""

from __future__ import annotations

import math
import re
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from plait.chat import ChatRequest
from plait.errors import ModelOutputError

from .._base import Backend

__all__ = ["ComplexityScorer", "ModelScorer", "RequestFeatures", "Scorer", "request_features"]

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_OPERATOR = re.compile(r"(?<=[\d\s)])[-+*/×÷^%](?=[\s\d(])")
# Words that announce several steps, conversions or reasoning.
_CUES = re.compile(
    r"\b(then|after|before|each|total|remaining|convert|percent|ratio|average|twice|times|"
    r"prove|explain|why|compare|step|steps|how many|per|plus|minus|divided|multiplied)\b",
    re.IGNORECASE,
)


class RequestFeatures(BaseModel):
    """Cheap facts about a request, for rules and scorers."""

    model_config = ConfigDict(frozen=True)

    chars: int
    words: int
    numbers: int
    operators: int
    cues: int
    messages: int
    tools: int
    structured: bool


def request_features(request: ChatRequest) -> RequestFeatures:
    """Measure the request's last message and its shape (tools, schema, turns)."""
    text = getattr(request.messages[-1], "content", None) or ""
    return RequestFeatures(
        chars=len(text),
        words=len(text.split()),
        numbers=len(_NUMBER.findall(text)),
        operators=len(_OPERATOR.findall(text)),
        cues=len(_CUES.findall(text)),
        messages=len(request.messages),
        tools=len(request.tools),
        structured=request.response_schema is not None,
    )


@runtime_checkable
class Scorer(Protocol):
    """Scores a request's difficulty in [0, 1]; higher means it needs a stronger model."""

    async def score(self, request: ChatRequest) -> float: ...


class ComplexityScorer:
    """A logistic score over :class:`RequestFeatures`, no model call.

    ``score = sigmoid(bias + sum(weight * feature))`` with numbers, operators,
    cue words, length (log words), tools and turns as features. Only the order
    of scores matters to a calibrated :class:`ThresholdRouter`, so the weights
    rank requests rather than predict a probability; pass your own to tune.
    """

    DEFAULT_WEIGHTS = {
        "numbers": 0.45,
        "operators": 0.6,
        "cues": 0.5,
        "log_words": 0.35,
        "tools": 0.3,
        "messages": 0.05,
        "structured": 0.2,
    }

    def __init__(self, weights: dict[str, float] | None = None, bias: float = -3.0) -> None:
        self.weights = {**self.DEFAULT_WEIGHTS, **(weights or {})}
        self.bias = bias

    def score_sync(self, request: ChatRequest) -> float:
        """The score, without an event loop."""
        f = request_features(request)
        values = {
            "numbers": f.numbers,
            "operators": f.operators,
            "cues": f.cues,
            "log_words": math.log1p(f.words),
            "tools": f.tools,
            "messages": f.messages,
            "structured": float(f.structured),
        }
        z = self.bias + sum(self.weights.get(k, 0.0) * v for k, v in values.items())
        return 1.0 / (1.0 + math.exp(-z))

    async def score(self, request: ChatRequest) -> float:
        return self.score_sync(request)


_JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"difficulty": {"enum": [1, 2, 3, 4, 5]}},
    "required": ["difficulty"],
}
_JUDGE_PROMPT = (
    "Rate how hard this request is for a small language model, from 1 (trivial) to 5 "
    "(needs several careful steps). Answer with JSON.\n\nRequest:\n{text}"
)


class ModelScorer:
    """Asks a (small, local) model to rate difficulty 1-5; score = (rating - 1) / 4.

    Args:
        backend: the judging model; a grammar-constrained local model keeps the
            answer parseable.
        fallback: used when the judge's answer cannot be read.
    """

    def __init__(self, backend: Backend, *, fallback: Scorer | None = None) -> None:
        self.backend = backend
        self.fallback = fallback or ComplexityScorer()

    async def score(self, request: ChatRequest) -> float:
        text = getattr(request.messages[-1], "content", None) or ""
        judge = ChatRequest.from_prompt(
            _JUDGE_PROMPT.format(text=text[:2000]),
            response_schema=_JUDGE_SCHEMA,
            max_tokens=16,
            temperature=0.0,
            agent="router-judge",
            priority=request.priority,  # the routed request waits on this verdict
        )
        completion = await self.backend.complete(judge)
        try:
            rating = completion.parse_json()["difficulty"]
            return (float(rating) - 1.0) / 4.0
        except (ModelOutputError, KeyError, TypeError, ValueError):
            return await self.fallback.score(request)
