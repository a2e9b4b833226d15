"""Tools that workflow files name as built-ins beyond ``plait.tools``' own.

``files`` adds ``list_files`` and ``search_files`` (keyword search over the
text files of the workspace) to ``read_file``/``write_file``; ``memory`` turns
:class:`plait.memory.MemoryTools` into two tools.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, cast

from plait.errors import ConfigError, ToolError
from plait.memory import Memory, MemoryTools
from plait.provenance import Sourced
from plait.tools import Toolset, Workspace, file_tools, tool

__all__ = ["document_tools", "memory_tools"]

_WORD = re.compile(r"[a-z0-9]+")
# Words that match nearly every line and would drown the real matches.
_STOP = frozenset(
    "a an and are as at be by did do does for from has have how in is it many much of on or"
    " the to was were what when where which who why with".split()
)
_MAX_FILES = 200
_MAX_CHOICES = 50


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def document_tools(root: Path, *, read_only: bool) -> Toolset:
    """``list_files``, ``read_file``, ``search_files`` (and ``write_file``) inside ``root``."""
    if not root.is_dir():
        raise ConfigError(f"the files tool's folder {str(root)!r} does not exist")
    workspace = Workspace(root)

    def files() -> list[str]:
        return workspace.files(limit=_MAX_FILES)

    @tool(tags=("files",))
    def list_files() -> list[str]:
        """List the files in the workspace."""
        return files()

    @tool(tags=("files",))
    def search_files(query: str) -> str:
        """Find the lines of the workspace's files that best match a query.

        Args:
            query: a few keywords, e.g. "Falcon battery life".
        """
        wanted = _terms(query)
        scored: list[tuple[int, str, str]] = []
        capped: list[str] = []
        skipped: list[str] = []
        for name in files():
            # One unreadable or huge file must not spoil the search of the others.
            try:
                text, cut = workspace.read_head(name, workspace.max_read_chars)
            except ToolError as e:
                skipped.append(f"{name} ({e})")
                continue
            if cut:
                capped.append(name)
            name_terms = _terms(Path(name).stem.replace("_", " "))
            for line in text.splitlines():
                line = line.strip()
                hits = len(wanted & (_terms(line) | name_terms))
                if line and hits:
                    scored.append((hits, name, line))
        notes = []
        if capped:
            notes.append(
                f"(searched only the first {workspace.max_read_chars} characters of: "
                + ", ".join(capped)
                + ")"
            )
        if skipped:
            notes.append("(not searched: " + "; ".join(skipped) + ")")
        scored.sort(key=lambda s: -s[0])
        lines = [f"{name}: {line}" for _, name, line in scored[:3]]
        return "\n".join((lines or [f"no line matches {query!r}"]) + notes)

    base = file_tools(root)
    if not read_only:
        return Toolset([list_files, base["read_file"], search_files, base["write_file"]])
    names = files()

    def read_file(path: str) -> str:
        """Read one of the workspace's files.

        Args:
            path: the file to read.
        """
        return workspace.read(path)

    if 0 < len(names) <= _MAX_CHOICES:
        # The files cannot change (read-only), so the path is one of a known set:
        # as an enum, even a small model's constrained plan names a real file.
        read_file.__annotations__ = {"path": Literal[tuple(names)], "return": str}
    return Toolset([list_files, tool(tags=("files",))(read_file), search_files])


def memory_tools(memory: Memory, *, agent: str = "workflow", k: int = 3) -> Toolset:
    """``memory_search`` and ``memory_remember`` over ``memory``."""
    # Memory has keyword-only options where MemoryTools' protocol says **kwargs.
    helper = MemoryTools(cast(Any, memory), agent=agent, k=k)

    @tool(tags=("memory",))
    async def memory_search(query: str) -> Sourced:
        """Search long-term memory for facts, past episodes and lessons.

        Args:
            query: what to look for.
        """
        return await helper.search(query)

    @tool(tags=("memory",))
    async def memory_remember(text: str) -> str:
        """Store a fact in long-term memory for later runs.

        Args:
            text: the fact to remember.
        """
        return await helper.call("memory_remember", {"text": text})

    return Toolset([memory_search, memory_remember])
