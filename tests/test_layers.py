"""Imports point one way: a lower layer never imports a higher one, at module top or lazily.

The source folders are read as the installed package sees them (``agents/`` is
``plait.agents``, and so on: the ``package-dir`` mapping of pyproject.toml), every
``import`` and ``from ... import`` anywhere in a module is resolved to the module it
names, and each is checked against the layer order below.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own room and any lower layer; rooms that
# share a rank (compiler and adapters) may not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("plait",),  # the core: types, errors, settings, tracing, prompts
    ("plait.backends",),
    ("plait.tools",),
    # Memory sits above tools: it offers memory_search / memory_remember as tools.
    ("plait.memory",),
    ("plait.agents",),
    ("plait.graphs.dag",),
    ("plait.graphs.compiler", "plait.graphs.adapters"),
    ("plait.graphs.workflows",),
    ("plait.graphs",),  # the facade that re-exports the four rooms
    ("plait.evals",),  # evaluations run agents and planners on any backend
    ("plait.cli", "plait.__main__"),
)

# Third-party packages a room must never import, with the reason.
FORBIDDEN_EXTERNAL = {
    # The DAG executor schedules tasks itself; LangGraph carries the loops above it.
    "plait.graphs.dag": ("langgraph",),
}

# Third-party packages only some modules may import: the HTTP stack of `plait serve`
# stays in plait.cli.serve (which the CLI imports lazily), so nothing else loads it;
# `plait mcp --http` runs the MCP SDK's own app on uvicorn, imported when it starts.
ONLY_IN: dict[str, tuple[str, ...]] = {
    "fastapi": ("plait.cli.serve",),
    "starlette": ("plait.cli.serve",),
    "uvicorn": ("plait.cli.serve", "plait.cli._mcp"),
}

# Deliberate exceptions: (importer room, imported room) -> why. Keep it empty if you can.
ALLOWED: dict[tuple[str, str], str] = {
    ("plait.__main__", "plait.cli"): "`python -m plait` is the command line",
}


def _package_dirs() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    return {package: ROOT / folder for package, folder in mapping.items()}


def _modules() -> dict[str, Path]:
    """Every module of the installed tree, by dotted name."""
    modules: dict[str, Path] = {}
    for package, folder in _package_dirs().items():
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            name = ".".join([package, *parts])
            # A mapped folder wins over a same-named folder inside plait/.
            if name not in modules or package != "plait":
                modules[name] = path
    return modules


def _room(module: str) -> str:
    """The most specific layer room that holds ``module``."""
    best = ""
    for rooms in LAYERS:
        for room in rooms:
            inside = module == room or module.startswith(room + ".")
            if inside and len(room) > len(best):
                best = room
    return best


def _rank(room: str) -> int:
    return next(i for i, rooms in enumerate(LAYERS) if room in rooms)


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative ones resolved."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from plait import agents` imports the subpackage itself.
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def _violations() -> list[str]:
    modules = _modules()
    problems = []
    for name, path in sorted(modules.items()):
        room = _room(name)
        for line, target in _imports(name, path):
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}"
            top = target.split(".")[0]
            if top != "plait":
                if top in FORBIDDEN_EXTERNAL.get(room, ()):
                    problems.append(f"{where}: {name} imports {target} ({room} must not)")
                continue
            if target not in modules:
                continue  # a name imported from a module, not a module itself
            other = _room(target)
            if other == room or (room, other) in ALLOWED:
                continue
            if _rank(other) >= _rank(room):
                problems.append(f"{where}: {name} ({room}) imports {target} ({other})")
    return problems


def test_no_layer_imports_a_higher_one():
    assert _violations() == []


def test_the_http_stack_is_imported_only_by_plait_serve():
    problems = []
    for name, path in sorted(_modules().items()):
        for line, target in _imports(name, path):
            homes = ONLY_IN.get(target.split(".")[0])
            if homes is not None and not any(
                name == home or name.startswith(home + ".") for home in homes
            ):
                problems.append(f"{path.relative_to(ROOT)}:{line}: {name} imports {target}")
    assert problems == []


def test_every_module_belongs_to_a_layer():
    assert [n for n in _modules() if not _room(n)] == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from plait.agents import Agent\n", "plait.backends.x (plait.backends) imports"),
        ("from ..graphs.dag import Plan\n", "plait.backends.x (plait.backends) imports"),
        ("def f():\n    from plait.cli import main\n", "imports plait.cli"),
    ],
)
def test_the_check_sees_top_level_relative_and_lazy_imports(
    tmp_path, monkeypatch, source, expected
):
    fake = tmp_path / "x.py"
    fake.write_text(source)
    real = _modules()

    def with_fake() -> dict[str, Path]:
        return {**real, "plait.backends.x": fake}

    monkeypatch.setattr(sys.modules[__name__], "_modules", with_fake)
    assert any(expected in problem for problem in _violations())
