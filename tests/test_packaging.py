"""The install gives one import tree, `plait.*`, and nothing generic at top level."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("agents", "backends", "graphs", "memory", "tools")


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


def test_every_folder_with_python_code_is_packaged(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for sub in SUBPACKAGES:
        for init in (ROOT / sub).rglob("__init__.py"):
            relative = init.relative_to(ROOT).as_posix()
            assert f"plait/{relative}" in names, f"{relative} is not in the wheel"


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


@pytest.mark.parametrize("package", ["plait", *(f"plait.{s}" for s in SUBPACKAGES)])
def test_subpackages_declare_a_sorted_all(package):
    module = __import__(package, fromlist=["__all__"])
    assert list(module.__all__) == sorted(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name)
