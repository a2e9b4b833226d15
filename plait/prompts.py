"""Prompt templates are package data: each package keeps its own in ``prompts/*.txt``.

Every layer reads them through :func:`load_prompt`, so templates are read once per
process and a missing file names the package and the template.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["load_prompt"]


@cache
def load_prompt(package: str, name: str) -> str:
    """The text of ``<package>/prompts/<name>.txt``, without surrounding whitespace.

    Args:
        package: the package that ships the template (a module's ``__package__``).
        name: the template's file name without ``.txt``.
    """
    try:
        text = resources.files(package).joinpath(f"prompts/{name}.txt").read_text("utf-8")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{package} ships no prompt template {name!r}") from e
    return text.strip()
