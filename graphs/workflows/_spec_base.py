"""The base of every workflow-file model: closed (unknown keys are errors) and frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["NAME_PATTERN", "SpecModel"]

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
"""What an entry's name may be: a letter, then letters, digits, ``_`` and ``-``."""


class SpecModel(BaseModel):
    """A part of a workflow file: unknown keys are problems, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
