"""The data path of one workflow run: which plait modules it passes, and how often it hops.

Runs ``plait run FILE`` in this process under a profiler that watches every
Python call (the engine thread's too) and keeps those from one plait module
into another: ``modules`` is how many plait modules did work for the run,
``edges`` how many distinct caller -> callee module pairs there were, and
``hops`` how many calls crossed a module boundary in all (stream chunks and
engine steps repeat); ``orchestration_*`` leave out the calls between two of
the local engine's own modules. Imports (module
bodies) are not counted; the figures are for reading the code, not timing, so
the profiler's slowdown does not matter.

    python benchmarks/data_path.py --json                       # examples/drone_qa.yaml
    python benchmarks/data_path.py examples/team_greetings.yaml --list
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

_EVENT_LOOP = str(Path("asyncio") / "events.py")
_ENGINE = "plait.backends.local."
ROOT = Path(__file__).resolve().parent.parent
# Source folders and the package names they are installed under (pyproject's package-dir).
FOLDERS = {
    "plait": "plait",
    "agents": "plait.agents",
    "backends": "plait.backends",
    "graphs": "plait.graphs",
    "memory": "plait.memory",
    "tools": "plait.tools",
}


def module_of(filename: str) -> str | None:
    """The plait module a source file belongs to (``None``: not plait's)."""
    path = Path(filename)
    try:
        relative = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    parts = relative.with_suffix("").parts
    if not parts or parts[0] not in FOLDERS:
        return None
    name = ".".join((FOLDERS[parts[0]], *parts[1:]))
    return name.removesuffix(".__init__")


class PathRecorder:
    """Counts calls from one plait module into another."""

    def __init__(self) -> None:
        self.edges: Counter[tuple[str, str]] = Counter()
        self.modules: set[str] = set()
        self._names: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def _name(self, filename: str) -> str | None:
        found = self._names.get(filename, "")
        if found == "":
            found = self._names[filename] = module_of(filename)
        return found

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or frame.f_code.co_name == "<module>":
            return
        callee = self._name(frame.f_code.co_filename)
        if callee is None:
            return
        if _importing(frame):
            return
        caller_frame = frame.f_back
        # Walk out of non-plait frames (the stdlib, pydantic): the hop is from the
        # plait code that caused the call. A frame the event loop resumes (a task
        # step) was not called by plait code at all: no hop.
        while caller_frame is not None and self._name(caller_frame.f_code.co_filename) is None:
            if _EVENT_LOOP in caller_frame.f_code.co_filename:
                caller_frame = None
                break
            caller_frame = caller_frame.f_back
        with self._lock:
            self.modules.add(callee)
            if caller_frame is None:
                return
            caller = self._name(caller_frame.f_code.co_filename)
            if caller is not None and caller != callee:
                self.edges[(caller, callee)] += 1


def _in_engine(module: str) -> bool:
    return module.startswith(_ENGINE) and module != f"{_ENGINE}backend"


def _importing(frame: FrameType) -> bool:
    """Whether ``frame`` runs as part of an import (a module body is on the stack)."""
    outer: FrameType | None = frame
    while outer is not None:
        if outer.f_code.co_name == "<module>" and outer.f_globals.get("__name__") != "__main__":
            return True
        outer = outer.f_back
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow", nargs="?", default=str(ROOT / "examples" / "drone_qa.yaml"))
    parser.add_argument("--json", action="store_true", help="one JSON line")
    parser.add_argument("--list", action="store_true", help="also list modules and edges")
    args = parser.parse_args()

    from plait.cli import main as plait_main

    recorder = PathRecorder()
    output = io.StringIO()
    threading.setprofile(recorder.profile)
    sys.setprofile(recorder.profile)
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                plait_main(["run", args.workflow])
            except SystemExit as e:
                code = e.code
            else:
                code = 0
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    # The orchestration path: everything but the local engine's insides (calls
    # between two of its modules, which repeat per token and per batch).
    orchestration = [e for e in recorder.edges if not all(map(_in_engine, e))]
    result = {
        "benchmark": "data_path",
        "workflow": Path(args.workflow).name,
        "exit_code": code,
        "modules": len(recorder.modules),
        "edges": len(recorder.edges),
        "hops": sum(recorder.edges.values()),
        "orchestration_modules": len({m for e in orchestration for m in e}),
        "orchestration_edges": len(orchestration),
    }
    if args.list:
        result["module_list"] = sorted(recorder.modules)
        result["edge_list"] = [f"{a} -> {b} x{n}" for (a, b), n in recorder.edges.most_common()]
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
