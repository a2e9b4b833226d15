"""Package names imported on first use (PEP 562), so a light command stays light.

Also the one way a package keeps a name that moved elsewhere for one more
release: reading it warns (``DeprecationWarning``) and gives the new home's value.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Moved", "lazy_names", "moved_names"]

Moved = Mapping[str, tuple[str, str]]
"""Old name -> (``"module:attribute"`` of its new home, what to use instead, in words)."""


def lazy_names(
    package: str, homes: Mapping[str, str], moved: Moved | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose names live in submodules.

    ``homes`` maps each exported name to the submodule (relative, without the
    dot) that defines it; a name is imported the first time it is read, then
    kept in the package's namespace. ``moved``: deprecated names (see
    :func:`moved_names`), listed in neither ``__all__`` nor ``dir()``.
    """
    namespace = vars(sys.modules[package])
    deprecated = moved_names(package, moved or {})

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            return deprecated(name)
        value = getattr(importlib.import_module(f".{home}", package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__


def moved_names(package: str, moved: Moved) -> Callable[[str], Any]:
    """``__getattr__`` for ``package``'s names that moved: each read warns, then
    returns the value at the new home (never cached, so every reader is told)."""

    def __getattr__(name: str) -> Any:
        entry = moved.get(name)
        if entry is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target, instead = entry
        module, _, attribute = target.partition(":")
        warnings.warn(
            f"{package}.{name} is deprecated; use {instead}", DeprecationWarning, stacklevel=2
        )
        return getattr(importlib.import_module(module), attribute)

    return __getattr__
