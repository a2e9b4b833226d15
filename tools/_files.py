"""File read/write tools confined to one workspace folder.

Refused: absolute paths, ``..`` components, any symbolic link on the way, files
that are not regular files (FIFOs, sockets, devices) and files with more than
one hard link (another name for the same file may sit outside the workspace).

Every path is opened relative to a descriptor of the workspace folder, one
component at a time, never following a link (``openat`` with ``O_NOFOLLOW``),
and what was opened is checked with ``fstat``. Checking a full path and then
opening it again by name would let a folder swapped for a link in between lead
the open outside the workspace.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from plait.errors import ConfigError, ToolError, ToolPermissionError

from ._registry import Toolset
from ._tool import tool

__all__ = ["Workspace", "file_tools"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
# O_NONBLOCK: opening a FIFO waits for a writer otherwise (the fstat check comes after the open).
_FILE_FLAGS = getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | _CLOEXEC
# Deeper folders are not listed (a nesting bomb would otherwise exhaust descriptors).
_MAX_DEPTH = 32

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


class Workspace:
    """A folder that file tools may not leave.

    Needs a POSIX system (``openat``-style ``dir_fd`` opens).

    Args:
        root: the folder (it must exist).
        max_read_chars: longer files are refused by :meth:`read` (and searched only
            up to this many characters by callers of :meth:`read_head`).
        max_write_bytes: :meth:`write` refuses longer content (UTF-8 bytes).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_read_chars: int = 100_000,
        max_write_bytes: int = 1_000_000,
    ) -> None:
        self.root = Path(root)
        self.max_read_chars = max_read_chars
        self.max_write_bytes = max_write_bytes

    def resolve(self, relative: str) -> Path:
        """The path for ``relative``, after every confinement check of the folders that exist.

        For display: :meth:`read` and :meth:`write` never open a file by this path.

        Raises:
            ToolPermissionError: the path is absolute, climbs out with ``..``, or
                passes through a symbolic link.
            ConfigError: the workspace folder does not exist.
        """
        parts = _parts(relative)
        fd = self._open_root()
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                try:
                    mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
                except (FileNotFoundError, NotADirectoryError):
                    break  # the rest does not exist yet (a write may create it)
                if stat.S_ISLNK(mode):
                    raise ToolPermissionError(
                        f"path {relative!r} refused: {part!r} is a symbolic link"
                    )
                if last or not stat.S_ISDIR(mode):
                    break
                next_fd = _open_dir(fd, part, relative)
                os.close(fd)
                fd = next_fd
        finally:
            os.close(fd)
        return self.root.joinpath(*parts)

    def read(self, relative: str) -> str:
        """Read a UTF-8 text file inside the workspace.

        Raises:
            ToolError: no such file, not a regular file, or longer than ``max_read_chars``.
            ToolPermissionError: the path leaves the workspace, passes through a
                link, or names a file with more than one hard link.
        """
        text, cut = self.read_head(relative, self.max_read_chars)
        if cut:
            raise ToolError(f"{relative!r} is longer than {self.max_read_chars} characters")
        return text

    def read_head(self, relative: str, max_chars: int) -> tuple[str, bool]:
        """The first ``max_chars`` characters of a file and whether the file is longer.

        Refuses what :meth:`read` refuses, except length.
        """
        with self._parent(relative, create=False) as (dir_fd, name):
            fd = _open_regular(dir_fd, name, relative, os.O_RDONLY)
            if fd is None:
                raise ToolError(f"no file {relative!r} in the workspace")
        try:
            with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
                text = f.read(max_chars + 1)
        except OSError as e:
            raise ToolError(f"cannot read {relative!r}: {e.strerror or e}") from e
        return text[:max_chars], len(text) > max_chars

    def write(self, relative: str, content: str) -> int:
        """Write a UTF-8 text file inside the workspace, creating folders; returns bytes written.

        Raises:
            ToolError: the content is over ``max_write_bytes``, or the path names
                something other than a regular file.
            ToolPermissionError: the path leaves the workspace, passes through a
                link, or names a file with more than one hard link.
        """
        data = content.encode("utf-8")
        if len(data) > self.max_write_bytes:
            raise ToolError(
                f"content for {relative!r} is {len(data)} bytes; write_file takes at most "
                f"{self.max_write_bytes} bytes"
            )
        with self._parent(relative, create=True) as (dir_fd, name):
            fd = _open_regular(dir_fd, name, relative, os.O_WRONLY)
            if fd is None:
                fd = _create(dir_fd, name, relative)
        try:
            with os.fdopen(fd, "wb") as f:
                f.truncate(0)
                f.write(data)
        except OSError as e:
            raise ToolError(f"cannot write {relative!r}: {e.strerror or e}") from e
        return len(data)

    def files(self, *, limit: int | None = None) -> list[str]:
        """Relative paths of the workspace's regular files, sorted (first ``limit`` of them).

        Names starting with a dot (files and folders) and symbolic links are left
        out; the walk goes through folder descriptors, never following a link.
        """
        found: list[str] = []
        _walk(self._open_root(), "", found, 0)
        found.sort()
        return found if limit is None else found[:limit]

    def _open_root(self) -> int:
        if os.open not in os.supports_dir_fd:
            raise ConfigError("the file tools need a system that opens files relative to a folder")
        try:
            return os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        except OSError as e:
            raise ConfigError(f"workspace folder {str(self.root)!r} does not exist") from e

    @contextmanager
    def _parent(self, relative: str, *, create: bool) -> Iterator[tuple[int, str]]:
        """A descriptor of the folder holding ``relative``'s last component, and that name."""
        parts = _parts(relative)
        if not parts:
            raise ToolError(f"{relative!r} is the workspace folder, not a file")
        fd = self._open_root()
        try:
            for part in parts[:-1]:
                next_fd = _open_dir(fd, part, relative, create=create)
                os.close(fd)
                fd = next_fd
            yield fd, parts[-1]
        finally:
            os.close(fd)


def _parts(relative: str) -> list[str]:
    if not relative or "\x00" in relative:
        raise ToolPermissionError("an empty path or a path with a NUL byte is refused")
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or Path(relative).is_absolute() or Path(relative).drive:
        raise ToolPermissionError(
            f"absolute path {relative!r} refused: paths are relative to the workspace"
        )
    if any(part == ".." for part in pure.parts):
        raise ToolPermissionError(f"path {relative!r} refused: '..' may not leave the workspace")
    return [part for part in pure.parts if part != "."]


def _open_dir(fd: int, name: str, relative: str, *, create: bool = False) -> int:
    """Open folder ``name`` inside ``fd`` without following a link (making it if asked)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError as e:
        if not create:
            raise ToolError(f"no file {relative!r} in the workspace") from e
    except OSError as e:
        raise _refusal(fd, name, relative, e, want="a folder") from e
    try:
        os.mkdir(name, 0o755, dir_fd=fd)
    except FileExistsError:
        pass  # made meanwhile: the open below checks what it is
    except OSError as e:
        raise ToolError(f"cannot make folder {name!r} for {relative!r}: {e.strerror}") from e
    return _open_dir(fd, name, relative)


def _refusal(fd: int, name: str, relative: str, error: OSError, *, want: str) -> ToolError:
    """The error for ``name`` in ``fd`` that could not be opened as ``want``."""
    try:
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
    except OSError:
        return ToolError(f"cannot open {relative!r}: {error.strerror or error}")
    if stat.S_ISLNK(mode):
        return ToolPermissionError(f"path {relative!r} refused: {name!r} is a symbolic link")
    if want == "a folder" and not stat.S_ISDIR(mode):
        return ToolError(f"path {relative!r}: {name!r} is {_kind(mode)}, not a folder")
    if want == "a file" and stat.S_ISDIR(mode):
        return ToolError(f"{relative!r} is a folder, not a file")
    if want == "a file" and not stat.S_ISREG(mode):
        return ToolError(f"{relative!r} is {_kind(mode)}, not a regular file")
    return ToolError(f"cannot open {relative!r}: {error.strerror or error}")


def _check(st: os.stat_result, name: str, relative: str) -> None:
    """Refuse anything but a regular file with one link."""
    if stat.S_ISLNK(st.st_mode):
        raise ToolPermissionError(f"path {relative!r} refused: {name!r} is a symbolic link")
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"{relative!r} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ToolError(f"{relative!r} is {_kind(st.st_mode)}, not a regular file")
    if st.st_nlink > 1:
        raise ToolPermissionError(
            f"{relative!r} refused: it has {st.st_nlink} hard links, and another name for "
            "the same file may lie outside the workspace"
        )


def _open_regular(dir_fd: int, name: str, relative: str, access: int) -> int | None:
    """Open an existing regular file ``name`` in ``dir_fd``; None when there is none."""
    try:
        # Checked before opening too: opening a device can have effects of its own.
        _check(os.stat(name, dir_fd=dir_fd, follow_symlinks=False), name, relative)
        fd = os.open(name, access | _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENOTDIR):
            # Swapped for a link, a FIFO, a socket or a folder since the stat above.
            raise _refusal(dir_fd, name, relative, e, want="a file") from e
        raise ToolError(f"cannot open {relative!r}: {e.strerror or e}") from e
    try:
        _check(os.fstat(fd), name, relative)  # what was opened, not what was named
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create(dir_fd: int, name: str, relative: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS
    try:
        fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
    except FileExistsError:
        # Made meanwhile: write it only if it is a plain file now.
        existing = _open_regular(dir_fd, name, relative, os.O_WRONLY)
        if existing is None:
            raise ToolError(f"{relative!r} changed while being written; try again") from None
        fd = existing
        return fd
    except OSError as e:
        raise ToolError(f"cannot write {relative!r}: {e.strerror or e}") from e
    os.set_blocking(fd, True)
    return fd


def _walk(fd: int, prefix: str, found: list[str], depth: int) -> None:
    """Add the regular files under folder ``fd`` to ``found``; closes ``fd``."""
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_file(follow_symlinks=False):
                    found.append(prefix + entry.name)
                elif entry.is_dir(follow_symlinks=False) and depth < _MAX_DEPTH:
                    try:
                        sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                    except OSError:
                        continue  # removed, or swapped for a link, since it was listed
                    _walk(sub, f"{prefix}{entry.name}/", found, depth + 1)
    finally:
        os.close(fd)


def file_tools(
    root: str | os.PathLike[str],
    *,
    max_read_chars: int = 100_000,
    max_write_bytes: int = 1_000_000,
) -> Toolset:
    """``read_file`` and ``write_file`` tools confined to ``root`` (see :class:`Workspace`)."""
    workspace = Workspace(root, max_read_chars=max_read_chars, max_write_bytes=max_write_bytes)

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
