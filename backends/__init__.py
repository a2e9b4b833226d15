"""Model access: the backend contract, the local llama.cpp backend, test doubles.

Test doubles live in :mod:`plait.backends.testing`.
"""

from ._base import Backend, Capabilities
from .local import EngineStats, LocalBackend, PinnedPrefix, RequestStats, default_model_path

__all__ = [
    "Backend",
    "Capabilities",
    "EngineStats",
    "LocalBackend",
    "PinnedPrefix",
    "RequestStats",
    "default_model_path",
]
