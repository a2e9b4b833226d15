"""The Python modules that ``function: module:name`` tools come from.

A module next to the workflow file (``mytools.py`` or a package folder
``mytools/``) is found without ``PYTHONPATH``: it is imported as a submodule of
a private package whose path is that folder (``_plait_workflow_<hash>``), so two
workflows in different folders, each with its own ``tools.py``, get their own
module, and ``sys.path`` is left as it was (the folder is on it only while the
module is being imported, at its end, so that the module's own ``import
helpers`` of a sibling file works). Any other name is imported as usual.

:func:`module_problem` is what ``plait validate`` checks without running the
module: that it can be found and, for a module in the workflow's folder, that it
is a regular file and compiles.
:func:`import_tool_module` imports it for a run; whatever the import raises
(a syntax error, a missing dependency, an exception in the module's body)
becomes a :class:`~plait.errors.ConfigError` naming the module.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import stat
import sys
import types
from importlib.machinery import ModuleSpec
from pathlib import Path

from plait.errors import ConfigError

__all__ = ["WORKFLOW_PACKAGE_PREFIX", "import_tool_module", "local_module_file", "module_problem"]

_MAX_MODULE_BYTES = 10_000_000
_MESSAGE_CHARS = 200


def local_module_file(folder: Path, module: str) -> Path | None:
    """The file of ``module`` inside ``folder`` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``)."""
    parts = module.split(".")
    base = folder.joinpath(*parts)
    for candidate in (base.with_name(parts[-1] + ".py"), base / "__init__.py"):
        if os.path.lexists(candidate):
            return candidate
    return None


def _short(text: object) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 3] + "..."


def _readable_module(path: Path, shown: str) -> str | None:
    """Why ``path`` cannot be a module file, or ``None``."""
    try:
        info = os.stat(path)
    except OSError as e:
        return f"cannot read {shown}: {e.strerror or e}"
    if not stat.S_ISREG(info.st_mode):
        return f"{shown} is not a regular file"
    if info.st_size > _MAX_MODULE_BYTES:
        return f"{shown} has more than {_MAX_MODULE_BYTES:,} bytes"
    return None


def _syntax_problem(path: Path, shown: str) -> str | None:
    """A compile error of the module file, positioned; its source line is never quoted."""
    try:
        code = path.read_bytes()
    except OSError as e:
        return f"cannot read {shown}: {e.strerror or e}"
    try:
        compile(code, str(path), "exec", dont_inherit=True)
    except SyntaxError as e:
        where = f"{shown}:{e.lineno or 1}:{e.offset or 1}"
        return f"{where}: the module does not compile: {_short(e.msg)}"
    except ValueError as e:  # NUL bytes in the source (older Pythons)
        return f"{shown}: the module does not compile: {_short(e)}"
    return None


def module_problem(folder: Path, module: str) -> str | None:
    """Why ``module`` could not be imported for a tool, found without running it; or ``None``."""
    local = local_module_file(folder, module)
    if local is not None:
        shown = str(local.relative_to(folder))
        return _readable_module(local, shown) or _syntax_problem(local, shown)
    # Only the top-level name is looked up: finding ``a.b`` would import ``a``,
    # and validation runs no code.
    top = module.partition(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as e:
        return f"cannot import module {module!r} ({type(e).__name__}: {_short(e)})"
    if spec is None:
        return (
            f"cannot import module {module!r}: there is no {module.replace('.', '/')}.py "
            f"in the workflow's folder and no module {top!r} on the Python path"
        )
    # A module on the Python path is only looked up: installed code is not
    # recompiled on every validation (a broken one still fails the run, positioned).
    return None


WORKFLOW_PACKAGE_PREFIX = "_plait_workflow_"


def _package_for(folder: Path) -> str:
    """The private package whose submodules are the modules of ``folder``."""
    resolved = folder.resolve()
    name = WORKFLOW_PACKAGE_PREFIX + hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    if name not in sys.modules:
        package = types.ModuleType(name, f"modules next to the workflow files in {resolved}")
        spec = ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(resolved)]
        package.__spec__ = spec
        package.__path__ = [str(resolved)]
        sys.modules[name] = package
    return name


def import_tool_module(folder: Path, module: str, *, tool: str) -> types.ModuleType:
    """Import ``module`` for the tool called ``tool``: from ``folder`` first, else as usual.

    Raises:
        ConfigError: the module cannot be found, does not compile, or raised while
            being imported (its error is named, the traceback is not shown).
    """
    local = local_module_file(folder, module)
    name, prefix = module, ""
    if local is not None:
        shown = str(local.relative_to(folder))
        problem = _readable_module(local, shown)
        if problem:
            raise ConfigError(f"tool {tool!r}: {problem}")
        prefix = _package_for(folder) + "."
        name = prefix + module

    def said(error: BaseException) -> str:
        text = _short(error)
        return text.replace(prefix, "") if prefix else text

    added = str(folder.resolve()) if local is not None else None
    if added is not None and added not in sys.path:
        sys.path.append(added)  # for the module's own imports of its sibling files
    else:
        added = None
    try:
        return importlib.import_module(name)
    except SyntaxError as e:
        shown = e.filename or module
        if local is not None and e.filename:
            try:
                shown = str(Path(e.filename).relative_to(folder.resolve()))
            except ValueError:
                shown = e.filename
        raise ConfigError(
            f"tool {tool!r}: module {module!r} does not compile: "
            f"{shown}:{e.lineno or 1}:{e.offset or 1}: {_short(e.msg)}"
        ) from e
    except ImportError as e:
        raise ConfigError(f"tool {tool!r}: cannot import module {module!r} ({said(e)})") from e
    except Exception as e:  # the module's own code raised while being imported
        raise ConfigError(
            f"tool {tool!r}: importing module {module!r} raised {type(e).__name__}: {said(e)}"
        ) from e
    finally:
        if added is not None:
            try:
                sys.path.remove(added)
            except ValueError:
                pass
