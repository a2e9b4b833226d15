"""OpenAI-compatible HTTP servers (OpenAI, vLLM, SGLang, llama.cpp, Ollama) over httpx."""

from plait._lazy import moved_names

from ._wire import SchemaMode
from .backend import OpenAIBackend

__all__ = ["OpenAIBackend", "SchemaMode"]

# One RetryPolicy for every layer now lives in plait.retry; the old name (with its
# old field names) stays one release.
_MOVED = {
    "RetryPolicy": (
        "plait.backends.openai._retry:legacy_retry_policy",
        "plait.retry.RetryPolicy (initial_backoff_s, max_backoff_s, max_retry_after_s, jitter)",
    )
}

__getattr__ = moved_names(__name__, _MOVED)
