"""GGUF models on llama.cpp, in process."""

from ._model_file import default_model_path
from ._stats import EngineStats, RequestStats
from .backend import LocalBackend, PinnedPrefix

__all__ = ["EngineStats", "LocalBackend", "PinnedPrefix", "RequestStats", "default_model_path"]
