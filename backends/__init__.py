"""Model access: the backend contract, the local llama.cpp backend, test doubles.

Test doubles live in :mod:`plait.backends.testing`.
"""

from ._base import Backend, Capabilities
from .local import LocalBackend, default_model_path
from .openai import OpenAIBackend, RetryPolicy

__all__ = [
    "Backend",
    "Capabilities",
    "LocalBackend",
    "OpenAIBackend",
    "RetryPolicy",
    "default_model_path",
]
