"""Reading a workflow file's text safely: a regular file, bounded, UTF-8.

The file is opened without blocking and checked to be a regular file of at
most :data:`MAX_FILE_BYTES` before anything is read, so a FIFO, a device or a
huge file is refused at once; binary and non-UTF-8 text is refused with the
offending byte's line and column.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

__all__ = ["MAX_FILE_BYTES", "line_column", "read_text"]

MAX_FILE_BYTES = 1_000_000
"""The largest workflow (or included) file read, in bytes."""


class _UnreadableFile(Exception):
    """Why a file's text cannot be read, and where (caught by the source reader).

    Never leaves the workflow reader: it becomes a positioned ``Problem``.
    """

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def read_text(path: Path) -> str:
    """The file's text; raises :class:`_UnreadableFile` with a positioned reason.

    The file is opened without blocking and checked to be a regular file of at
    most :data:`MAX_FILE_BYTES` before anything is read, so a FIFO, a device or
    a huge file is refused at once.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _UnreadableFile("is a folder, not a workflow file")
        if not stat.S_ISREG(info.st_mode):
            raise _UnreadableFile("is not a regular file (a FIFO, socket or device is never read)")
        if info.st_size > MAX_FILE_BYTES:
            raise _UnreadableFile(
                f"is {info.st_size:,} bytes; a workflow file may have at most "
                f"{MAX_FILE_BYTES:,} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES:  # it grew while being read
        raise _UnreadableFile(f"has more than {MAX_FILE_BYTES:,} bytes")
    return _decode(data)


def line_column(data: bytes | str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of ``offset`` in ``data``."""
    head = data[:offset]
    newline = b"\n" if isinstance(head, bytes) else "\n"
    line = head.count(newline) + 1  # type: ignore[arg-type]
    return line, offset - (head.rfind(newline) + 1) + 1  # type: ignore[arg-type]


def _decode(data: bytes) -> str:
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if data.startswith(bom):
            raise _UnreadableFile(f"is {name} text; save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        line, column = line_column(data, nul)
        raise _UnreadableFile("holds NUL bytes: a binary file, not YAML text", line, column)
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte order mark is allowed
    except UnicodeDecodeError as e:
        line, column = line_column(data, e.start)
        raise _UnreadableFile(
            f"is not UTF-8 text (byte 0x{data[e.start]:02x} cannot be decoded); save it as UTF-8",
            line,
            column,
        ) from e
