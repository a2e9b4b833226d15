"""GGUF models on llama.cpp, in process."""

from ._model_file import default_model_path
from .backend import LocalBackend

__all__ = ["LocalBackend", "default_model_path"]
