"""The ``backends:`` section: local GGUF models, OpenAI-compatible servers, routers."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from ._spec_base import SpecModel

__all__ = [
    "BackendSpec",
    "BreakerSpec",
    "LocalBackendSpec",
    "OpenAIBackendSpec",
    "PriceSpec",
    "RouterBackendSpec",
    "RuleSpec",
]


class PriceSpec(SpecModel):
    """What a backend charges per 1,000 tokens (local models: nothing)."""

    prompt_per_1k: float = Field(default=0.0, ge=0)
    completion_per_1k: float = Field(default=0.0, ge=0)
    cached_prompt_per_1k: float | None = Field(default=None, ge=0)


class LocalBackendSpec(SpecModel):
    """A GGUF model on the local llama.cpp engine (``model`` omitted: the embedded default)."""

    kind: Literal["local"]
    model: str | None = Field(default=None, description="GGUF file; relative to the workflow file")
    n_ctx: int | None = Field(default=None, ge=64)
    n_threads: int | None = Field(default=None, ge=1)
    n_seq_max: int | None = Field(default=None, ge=1, le=256)
    temperature: float = Field(default=0.2, ge=0)
    kv_type_k: str | None = None
    kv_type_v: str | None = None
    prefix_cache: bool | None = None


class OpenAIBackendSpec(SpecModel):
    """Any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp server, Ollama)."""

    kind: Literal["openai"]
    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY", description="environment variable holding the API key"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(
        default=60.0, gt=0, description="one deadline per try (connect, headers, whole body)"
    )
    max_response_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1, description="largest response body read"
    )
    max_attempts: int = Field(default=3, ge=1)
    price: PriceSpec | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # The URL is not quoted back: it may hold a ${SECRET}.
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        return value


class RuleSpec(SpecModel):
    """One rule of a ``rules`` router: every condition given must hold."""

    backend: str
    agent: str | None = Field(default=None, description="glob on the calling agent's name")
    tags: list[str] = Field(default_factory=list)
    pattern: str | None = Field(default=None, description="regex searched in the last message")


class BreakerSpec(SpecModel):
    """A fallback chain's circuit breaker.

    ``failures`` transport failures within ``window_s`` open it for ``cooldown_s``.
    """

    failures: int = Field(default=3, ge=1)
    window_s: float = Field(default=30.0, gt=0)
    cooldown_s: float = Field(default=30.0, ge=0)


class RouterBackendSpec(SpecModel):
    """A router: a backend that picks one of the other backends per request.

    ``policy: fallback`` tries ``chain`` in order; ``rules`` sends a request to
    the first matching rule's backend, else ``default``; ``threshold`` sends
    requests scoring at least ``threshold`` to ``strong``, the rest to ``cheap``.
    ``budget`` caps the cost of the run (prices come from the backends).
    """

    kind: Literal["router"]
    policy: Literal["fallback", "rules", "threshold"]
    chain: list[str] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    default: str | None = None
    cheap: str | None = None
    strong: str | None = None
    threshold: float = Field(default=0.5, ge=0, le=1)
    budget: float | None = Field(default=None, ge=0)
    agent_budgets: dict[str, float] = Field(default_factory=dict)
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)


BackendSpec = Annotated[
    LocalBackendSpec | OpenAIBackendSpec | RouterBackendSpec, Field(discriminator="kind")
]
