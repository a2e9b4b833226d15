"""What a backend answers: completions, token usage, timings and stream chunks."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plait.errors import ModelOutputError
from plait.messages import AssistantMessage, ToolCall
from plait.provenance import Source

__all__ = ["Completion", "FinishReason", "StreamChunk", "Timings", "Usage"]

FinishReason = Literal["stop", "length", "tool_calls", "cancelled"]


class Usage(BaseModel):
    """Token counts of one request.

    ``cached_prompt_tokens`` is the part of the prompt that was not prefilled
    again because a prefix cache already held it. ``forced_tokens`` is the part
    of ``completion_tokens`` that a grammar forced, so the local engine appended
    it without sampling (jump-forward decoding). ``drafted_tokens`` were proposed
    by speculative drafts and ``accepted_tokens`` of them kept: each accepted
    token is a decode step saved.

    ``cache_hits`` counts requests answered from a model-call cache
    (:class:`~plait.backends.CachedBackend`) instead of a model: nothing was
    processed for them, so they add no tokens to the counts above, and
    ``cache_saved`` holds the usage their stored answers had when first computed
    (price it to know the cost saved).
    """

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = Field(default=0, ge=0)
    cached_prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    forced_tokens: int = Field(default=0, ge=0)
    drafted_tokens: int = Field(default=0, ge=0)
    accepted_tokens: int = Field(default=0, ge=0)
    cache_hits: int = Field(default=0, ge=0)
    cache_saved: Usage | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            forced_tokens=self.forced_tokens + other.forced_tokens,
            drafted_tokens=self.drafted_tokens + other.drafted_tokens,
            accepted_tokens=self.accepted_tokens + other.accepted_tokens,
            cache_hits=self.cache_hits + other.cache_hits,
            cache_saved=_sum_saved(self.cache_saved, other.cache_saved),
        )

    def cached_text(self) -> str | None:
        """The cache hits in words (``None`` when there were none).

        ``"3 answered from the cache (412 prompt + 96 generated tokens not recomputed)"``.
        """
        if not self.cache_hits:
            return None
        saved = self.cache_saved or Usage()
        return (
            f"{self.cache_hits} answered from the cache ({saved.prompt_tokens} prompt + "
            f"{saved.completion_tokens} generated tokens not recomputed)"
        )

    def generated_text(self) -> str:
        """The generated tokens in words, with how they were produced when not all sampled.

        ``"83 generated"``, or ``"83 generated (40 forced; 9 drafted, 7 accepted)"``:
        the wording every front end (the REPL, ``plait runs show``, ``plait model``) uses.
        """
        parts = []
        if self.forced_tokens:
            parts.append(f"{self.forced_tokens} forced")
        if self.drafted_tokens:
            parts.append(f"{self.drafted_tokens} drafted, {self.accepted_tokens} accepted")
        how = f" ({'; '.join(parts)})" if parts else ""
        return f"{self.completion_tokens} generated{how}"


def _sum_saved(a: Usage | None, b: Usage | None) -> Usage | None:
    if a is None or b is None:
        return a or b
    return a + b


class Timings(BaseModel):
    """Wall-clock seconds spent on one request.

    ``first_token_s`` runs from the call to the first generated token (queueing
    plus prefill); ``total_s`` to the last one. ``queue_wait_s`` is the part of
    it the request waited for an engine to admit it (known for the local
    engine; ``None`` elsewhere).
    """

    model_config = ConfigDict(frozen=True)

    first_token_s: float | None = None
    total_s: float = 0.0
    queue_wait_s: float | None = None

    @property
    def decode_s(self) -> float | None:
        return None if self.first_token_s is None else self.total_s - self.first_token_s


class Completion(BaseModel):
    """A finished model answer.

    ``sources`` is what the answer rests on beyond the request itself: empty for
    a model's fresh answer (its provenance is what the caller fed it), and for a
    model-call cache hit the sources its caller had read when the stored answer
    was first computed, so provenance survives the replay (agents add them to
    what their run has read).
    """

    model_config = ConfigDict(frozen=True)

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    usage: Usage = Usage()
    timings: Timings = Timings()
    model: str = ""
    sources: frozenset[Source] = frozenset()

    @property
    def message(self) -> AssistantMessage:
        """This completion as the assistant turn to append to a conversation."""
        return AssistantMessage(content=self.text or None, tool_calls=self.tool_calls)

    def parse_json(self) -> Any:
        """Parse ``text`` as JSON.

        Raw control characters inside strings (a newline a model wrote as-is)
        are accepted.

        Raises:
            ModelOutputError: the text is not valid JSON.
        """
        try:
            return json.loads(self.text, strict=False)
        except json.JSONDecodeError as e:
            raise ModelOutputError(f"completion is not valid JSON ({e.msg})", raw=self.text) from e


class StreamChunk(BaseModel):
    """A piece of a streamed answer.

    Text arrives as ``delta`` pieces; the last chunk of every stream carries the
    whole ``completion`` (with tool calls, usage and timings) and nothing else.
    """

    model_config = ConfigDict(frozen=True)

    delta: str = ""
    completion: Completion | None = None

    @property
    def is_final(self) -> bool:
        return self.completion is not None
