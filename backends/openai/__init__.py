"""OpenAI-compatible HTTP servers (OpenAI, vLLM, SGLang, llama.cpp, Ollama) over httpx."""

from ._retry import RetryPolicy
from ._wire import SchemaMode
from .backend import OpenAIBackend

__all__ = ["OpenAIBackend", "RetryPolicy", "SchemaMode"]
