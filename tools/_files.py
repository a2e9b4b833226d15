"""File read/write tools confined to one workspace folder.

Refused: absolute paths, ``..`` components, and any symbolic link on the way
(a link could point outside the workspace, or be swapped in later).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from plait.errors import ConfigError, ToolError, ToolPermissionError

from ._registry import Toolset
from ._tool import tool

__all__ = ["Workspace", "file_tools"]


class Workspace:
    """A folder that file tools may not leave.

    Args:
        root: the folder (it must exist).
        max_read_chars: longer files are refused by :meth:`read`.
    """

    def __init__(self, root: str | os.PathLike[str], *, max_read_chars: int = 100_000) -> None:
        self.root = Path(root)
        self.max_read_chars = max_read_chars

    def resolve(self, relative: str) -> Path:
        """The real path for ``relative``, after every confinement check.

        Raises:
            ToolPermissionError: the path is absolute, climbs out with ``..``, or
                passes through a symbolic link.
            ConfigError: the workspace folder does not exist.
        """
        if not self.root.is_dir():
            raise ConfigError(f"workspace folder {str(self.root)!r} does not exist")
        if not relative or "\x00" in relative:
            raise ToolPermissionError("an empty path or a path with a NUL byte is refused")
        pure = PurePosixPath(relative.replace("\\", "/"))
        if pure.is_absolute() or Path(relative).is_absolute() or Path(relative).drive:
            raise ToolPermissionError(
                f"absolute path {relative!r} refused: paths are relative to the workspace"
            )
        if any(part == ".." for part in pure.parts):
            raise ToolPermissionError(
                f"path {relative!r} refused: '..' may not leave the workspace"
            )
        root = self.root.resolve()
        current = root
        for part in pure.parts:
            if part == ".":
                continue
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                break  # the rest does not exist yet (a write may create it)
            if stat.S_ISLNK(mode):
                raise ToolPermissionError(f"path {relative!r} refused: {part!r} is a symbolic link")
        target = root.joinpath(*[p for p in pure.parts if p != "."])
        if not target.resolve().is_relative_to(root):
            raise ToolPermissionError(f"path {relative!r} refused: it leaves the workspace")
        return target

    def read(self, relative: str) -> str:
        """Read a UTF-8 text file inside the workspace."""
        path = self.resolve(relative)
        if path.is_dir():
            raise ToolError(f"{relative!r} is a folder, not a file")
        try:
            # O_NOFOLLOW: a link swapped in after the check is still refused.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError as e:
            raise ToolError(f"no file {relative!r} in the workspace") from e
        except IsADirectoryError as e:
            raise ToolError(f"{relative!r} is a folder, not a file") from e
        except OSError as e:
            raise ToolError(f"cannot open {relative!r}: {e.strerror}") from e
        with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
            text = f.read(self.max_read_chars + 1)
        if len(text) > self.max_read_chars:
            raise ToolError(f"{relative!r} is longer than {self.max_read_chars} characters")
        return text

    def write(self, relative: str, content: str) -> int:
        """Write a UTF-8 text file inside the workspace, creating folders; returns bytes written."""
        path = self.resolve(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Folders just created are plain folders; re-check in case one was a link.
        path = self.resolve(relative)
        data = content.encode("utf-8")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags, 0o644)
        except IsADirectoryError as e:
            raise ToolError(f"{relative!r} is a folder, not a file") from e
        except OSError as e:
            raise ToolError(f"cannot write {relative!r}: {e.strerror}") from e
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return len(data)


def file_tools(root: str | os.PathLike[str], *, max_read_chars: int = 100_000) -> Toolset:
    """``read_file`` and ``write_file`` tools confined to ``root``."""
    workspace = Workspace(root, max_read_chars=max_read_chars)

    @tool(tags=("files",))
    def read_file(path: str) -> str:
        """Read a text file from the workspace.

        Args:
            path: the file's path relative to the workspace, e.g. "notes/todo.txt".
        """
        return workspace.read(path)

    @tool(tags=("files",))
    def write_file(path: str, content: str) -> str:
        """Write a text file in the workspace (replacing it if it exists).

        Args:
            path: the file's path relative to the workspace.
            content: the text to write.
        """
        written = workspace.write(path, content)
        return f"wrote {written} bytes to {path}"

    return Toolset([read_file, write_file])
