"""The install gives one import tree, `plait.*`, and nothing generic at top level."""

import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("agents", "backends", "graphs", "memory", "tools")
# Every package with an __all__ of its own (rooms included), for the sorted-__all__ check.
PACKAGES = (
    "plait",
    "plait.agents",
    "plait.backends",
    "plait.backends.local",
    "plait.backends.openai",
    "plait.backends.routing",
    "plait.cli",
    "plait.cli.repl",
    "plait.cli.report",
    "plait.graphs",
    "plait.graphs.adapters",
    "plait.graphs.compiler",
    "plait.graphs.dag",
    "plait.graphs.workflows",
    "plait.memory",
    "plait.tools",
)


def _source_modules() -> dict[str, str]:
    """Module name -> source file (relative), as the package-dir mapping lays the tree out."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules: dict[str, str] = {}
    for package, folder in mapping["package-dir"].items():
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.relative_to(ROOT / folder)
            parts = [p for p in relative.with_suffix("").parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "plait" and len(parts) and parts[0] in SUBPACKAGES:
                continue  # a mapped folder, not part of plait/
            modules[name] = path.relative_to(ROOT).as_posix()
    return modules


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("plait-*.whl")
    return built


def test_wheel_installs_only_the_plait_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"plait"}
    for sub in SUBPACKAGES:
        assert f"plait/{sub}/__init__.py" in names
        assert not any(n.startswith(f"{sub}/") for n in names)
    assert "plait/backends/local/prompts/tool_calling.txt" in names
    assert "plait/agents/prompts/agent.txt" in names
    assert "plait/py.typed" in names


def test_wheel_declares_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as zf:
        (entry_points,) = [n for n in zf.namelist() if n.endswith("entry_points.txt")]
        assert "plait = plait.cli:main" in zf.read(entry_points).decode()


def _missing_from_wheel(wheel: Path, pattern: str) -> list[str]:
    """Source files matching ``pattern`` whose installed path is not in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = []
    for folder in ("plait", *SUBPACKAGES):
        for path in (ROOT / folder).rglob(pattern):
            relative = path.relative_to(ROOT).as_posix()
            installed = relative if folder == "plait" else f"plait/{relative}"
            if installed not in names:
                missing.append(relative)
    return missing


def test_every_folder_with_python_code_is_packaged(wheel):
    assert _missing_from_wheel(wheel, "__init__.py") == []


def test_every_prompt_file_is_packaged(wheel):
    assert _missing_from_wheel(wheel, "prompts/*.txt") == []


def test_wheel_and_source_tree_hold_the_same_modules(wheel):
    in_wheel = {
        n.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for n in zipfile.ZipFile(wheel).namelist()
        if n.endswith(".py")
    }
    assert in_wheel == set(_source_modules())


def test_the_installed_tree_imports_every_module_from_its_source_file():
    """What `pip install -e .` (the test environment) imports matches the wheel's layout."""
    modules = _source_modules()
    code = (
        "import importlib.util, json\n"
        f"names = {sorted(modules)!r}\n"
        # find_spec imports a module's parents, not the module (plait.__main__ would run).
        "print(json.dumps({n: importlib.util.find_spec(n).origin for n in names}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    files = json.loads(result.stdout)
    for name, source in modules.items():
        assert Path(files[name]).resolve() == (ROOT / source).resolve(), name


def test_installed_tree_has_no_generic_top_level_modules():
    code = (
        "import importlib.util, plait.agents, plait.graphs, plait.memory, plait.tools, "
        "plait.backends\n"
        f"print([n for n in {SUBPACKAGES!r} if importlib.util.find_spec(n)])"
    )
    # Run outside the repository so its folders are not on sys.path.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("package", PACKAGES)
def test_subpackages_declare_a_sorted_all(package):
    module = __import__(package, fromlist=["__all__"])
    assert list(module.__all__) == sorted(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name)
