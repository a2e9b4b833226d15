"""Workspace file tools against hostile workspaces: FIFOs, sockets, races, hard links, big files."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from plait.errors import ToolError, ToolPermissionError
from plait.graphs.workflows._tools import document_tools
from plait.messages import ToolCall
from plait.tools import ToolRunner, Workspace, file_tools

# A hung call fails the test instead of the suite (generous: a refusal takes microseconds).
_GUARD_S = 20


@pytest.fixture
def workspace(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file.txt").write_text("secret")
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file.txt").write_text("inside")
    return root


def _guarded(fn, unblock):
    """Run ``fn`` in a thread; if it hangs, call ``unblock`` and fail."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = fn()
        except Exception as e:  # the error is what the test looks at
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(_GUARD_S)
    if thread.is_alive():
        unblock()
        thread.join(_GUARD_S)
        pytest.fail(f"the call blocked for {_GUARD_S} s")
    return outcome


def _release_fifo_reader(path):
    # Opening the write end lets a reader blocked in open() go on (and read EOF).
    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _release_fifo_writer(path):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    threading.Timer(1.0, os.close, [fd]).start()


# -- not regular files -------------------------------------------------------------


def test_reading_a_fifo_is_refused_at_once(workspace):
    fifo = workspace / "pipe"
    os.mkfifo(fifo)
    outcome = _guarded(
        lambda: Workspace(workspace).read("pipe"), lambda: _release_fifo_reader(fifo)
    )
    assert isinstance(outcome.get("error"), ToolError), outcome
    assert "FIFO" in str(outcome["error"])


def test_writing_a_fifo_is_refused_at_once(workspace):
    fifo = workspace / "pipe"
    os.mkfifo(fifo)
    outcome = _guarded(
        lambda: Workspace(workspace).write("pipe", "x"), lambda: _release_fifo_writer(fifo)
    )
    assert isinstance(outcome.get("error"), ToolError), outcome
    assert "FIFO" in str(outcome["error"])


def test_a_socket_is_named_as_such(workspace):
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(workspace / "sock"))
        ws = Workspace(workspace)
        with pytest.raises(ToolError, match="is a socket, not a regular file"):
            ws.read("sock")
        with pytest.raises(ToolError, match="is a socket, not a regular file"):
            ws.write("sock", "x")


def test_a_device_is_refused(workspace):
    try:
        os.mknod(workspace / "null", 0o600 | 0o020000, os.makedev(1, 3))  # S_IFCHR: /dev/null
    except (PermissionError, AttributeError):
        pytest.skip("cannot make a device node here")
    ws = Workspace(workspace)
    with pytest.raises(ToolError, match="character device"):
        ws.read("null")
    with pytest.raises(ToolError, match="character device"):
        ws.write("null", "x")


# -- what held: names that leave --------------------------------------------------


@pytest.mark.parametrize("path", ["sub/\x00/file.txt", "../outside/file.txt", "/etc/passwd"])
def test_names_that_leave_stay_refused(workspace, path):
    ws = Workspace(workspace)
    with pytest.raises(ToolPermissionError):
        ws.read(path)
    with pytest.raises(ToolPermissionError):
        ws.write(path, "x")


def test_a_link_at_any_depth_is_refused(workspace):
    os.symlink(workspace.parent / "outside", workspace / "sub" / "deeper")
    ws = Workspace(workspace)
    with pytest.raises(ToolPermissionError, match="'deeper' is a symbolic link"):
        ws.read("sub/deeper/file.txt")
    with pytest.raises(ToolPermissionError, match="'deeper' is a symbolic link"):
        ws.write("sub/deeper/new/file.txt", "x")
    assert sorted(os.listdir(workspace.parent / "outside")) == ["file.txt"]


# -- races -------------------------------------------------------------------------

# Bounds on the racing loops (whichever comes first), not timing assertions.
_ROUNDS = 20_000
_RACE_S = 5.0

# Another process, as an attacker would be: it races the tool in parallel, not by turns.
_SWAP = """
import os, shutil, sys
sub, held, link, outside = sys.argv[1:5]
os.symlink(outside, link)
print("ready", flush=True)
while True:
    for old, new in ((sub, held), (link, sub), (sub, link), (held, sub)):
        try:
            os.rename(old, new)
        except OSError:
            pass
    if os.path.isdir(held) and not os.path.islink(sub):
        # A write made a new 'sub' while the real one was away: drop it, keep swapping.
        shutil.rmtree(sub, ignore_errors=True)
"""


class _Swapper:
    """Keeps swapping ``ws/sub`` for a link to the outside folder, and back."""

    def __init__(self, root):
        self.args = [root / "sub", root / "held", root / "sub.link", root.parent / "outside"]

    def __enter__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SWAP, *map(str, self.args)], stdout=subprocess.PIPE
        )
        assert self.process.stdout.readline() == b"ready\n"
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait(_GUARD_S)
        self.process.stdout.close()

    @staticmethod
    def rounds(count=_ROUNDS):
        end = time.monotonic() + _RACE_S
        for i in range(count):
            if time.monotonic() > end:
                return
            yield i


def test_racing_reads_never_return_the_outside_file(workspace):
    ws = Workspace(workspace)
    seen = {"inside": 0, "refused": 0, "raw OSError": 0}
    with _Swapper(workspace):
        for _ in _Swapper.rounds():
            try:
                text = ws.read("sub/file.txt")
            except ToolError:
                text = "refused"
            except OSError:  # counted, so that an escape shows even where these happen too
                text = "raw OSError"
            seen[text] = seen.get(text, 0) + 1
    assert seen.get("secret", 0) == 0, seen
    assert seen["raw OSError"] == 0, seen


def test_racing_writes_never_land_outside(workspace):
    ws = Workspace(workspace)
    raw_errors = 0
    with _Swapper(workspace):
        for i in _Swapper.rounds():
            try:
                ws.write("sub/file.txt", f"overwritten {i}")
                ws.write(f"sub/new{i % 10}.txt", "planted")
            except ToolError:
                continue
            except OSError:
                raw_errors += 1
    outside = workspace.parent / "outside"
    assert sorted(os.listdir(outside)) == ["file.txt"]
    assert (outside / "file.txt").read_text() == "secret"
    assert raw_errors == 0


def test_racing_listing_stays_inside(workspace):
    (workspace.parent / "outside" / "only_outside.txt").write_text("x")
    ws = Workspace(workspace)
    with _Swapper(workspace):
        for _ in _Swapper.rounds(2000):
            listed = ws.files()
            assert not any("only_outside" in name for name in listed), listed


# -- hard links --------------------------------------------------------------------


def test_hard_links_are_refused(workspace):
    os.link(workspace.parent / "outside" / "file.txt", workspace / "hard.txt")
    ws = Workspace(workspace)
    with pytest.raises(ToolPermissionError, match="2 hard links"):
        ws.read("hard.txt")
    with pytest.raises(ToolPermissionError, match="2 hard links"):
        ws.write("hard.txt", "overwritten")
    assert (workspace.parent / "outside" / "file.txt").read_text() == "secret"


# -- limits ------------------------------------------------------------------------


def test_write_has_a_size_limit(workspace):
    ws = Workspace(workspace, max_write_bytes=10)
    assert ws.write("ten.txt", "é" * 5) == 10
    with pytest.raises(ToolError, match="11 bytes; write_file takes at most 10 bytes"):
        ws.write("eleven.txt", "x" * 11)
    assert not (workspace / "eleven.txt").exists()


async def test_write_file_refuses_a_megabyte_and_more_by_default(workspace):
    runner = ToolRunner(file_tools(workspace))
    big = "x" * 1_000_001
    outcome = await runner.run(ToolCall(name="write_file", arguments={"path": "b", "content": big}))
    assert outcome.error == "failed" and "at most 1000000 bytes" in outcome.content
    assert not (workspace / "b").exists()


def test_listing_skips_links_hidden_names_and_non_files(workspace):
    os.mkfifo(workspace / "pipe")
    os.symlink(workspace.parent / "outside", workspace / "up")
    os.symlink(workspace / "sub" / "file.txt", workspace / "alias.txt")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "config").write_text("x")
    (workspace / ".hidden").write_text("x")
    (workspace / "a" / "b").mkdir(parents=True)
    (workspace / "a" / "b" / "c.txt").write_text("x")
    assert Workspace(workspace).files() == ["a/b/c.txt", "sub/file.txt"]
    assert Workspace(workspace).files(limit=1) == ["a/b/c.txt"]


async def test_one_big_or_odd_file_does_not_break_search(workspace):
    (workspace / "big.txt").write_text("falcon battery in the big file\n" + "x" * 200_000)
    (workspace / "small.txt").write_text("the falcon battery lasts ten hours\n")
    os.link(workspace.parent / "outside" / "file.txt", workspace / "linked.txt")
    tools = document_tools(workspace, read_only=False)
    found = await tools["search_files"].acall({"query": "falcon battery"})
    assert "small.txt: the falcon battery lasts ten hours" in found
    assert "big.txt: falcon battery in the big file" in found
    assert "searched only the first 100000 characters of: big.txt" in found
    assert "not searched: linked.txt" in found and "hard links" in found
    assert "secret" not in found
