"""The reference filesystem MCP server from npm (``@modelcontextprotocol/server-filesystem``),
run with node, through plait's MCP client.

``.ci/run`` installs it into ``.ci/mcp-servers``; without node or the package the
tests skip and say how to install it.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from plait.messages import ToolCall
from plait.tools import MCPClient, ToolLimits, ToolRunner

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "npm install --prefix .ci/mcp-servers @modelcontextprotocol/server-filesystem"
ENTRY = Path(
    os.environ.get(
        "PLAIT_MCP_FILESYSTEM_SERVER",
        ROOT / ".ci/mcp-servers/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js",
    )
)

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(
        not ENTRY.is_file(), reason=f"the filesystem MCP server is not installed ({INSTALL})"
    ),
]


def call(name: str, **arguments: object) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


def children_running(script: Path) -> list[int]:
    """Process ids of this process's children whose command line names ``script``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and str(script) in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "falcon.txt").write_text("Falcon battery: 42 minutes\n")
    for i in range(300):
        (root / "notes" / f"filler_{i:03}.txt").write_text(f"line {i}\n")
    (tmp_path / "secret.txt").write_text("outside the workspace\n")
    return root


async def test_list_call_and_errors(workspace: Path) -> None:
    async with MCPClient(["node", str(ENTRY), str(workspace)], name="fs") as client:
        tools = await client.tools()
        assert {"read_text_file", "write_file", "list_directory"} <= set(tools.names)
        runner = ToolRunner(tools)
        read = await runner.run(call("read_text_file", path=str(workspace / "notes/falcon.txt")))
        assert (read.error, read.content) == (None, "Falcon battery: 42 minutes\n")
        wrote = await runner.run(
            call("write_file", path=str(workspace / "new.txt"), content="written by plait")
        )
        assert wrote.error is None, wrote.content
        assert (workspace / "new.txt").read_text() == "written by plait"
        # The server's schema is checked here: 'path' is required.
        missing = await runner.run(call("read_text_file"))
        assert missing.error == "arguments" and "'path' is a required property" in missing.content
        # The server refuses a path outside its folder: a failed call naming the server.
        outside = await runner.run(
            call("read_text_file", path=str(workspace.parent / "secret.txt"))
        )
        assert outside.error == "failed"
        assert "MCP server 'fs'" in outside.content and "outside allowed" in outside.content


async def test_timeout_then_the_session_goes_on(workspace: Path) -> None:
    async with MCPClient(["node", str(ENTRY), str(workspace)], name="fs") as client:
        tools = await client.tools()
        hurried = ToolRunner(tools, ToolLimits(timeout_s=0.001))
        tree = await hurried.run(call("directory_tree", path=str(workspace)))
        assert tree.error == "timeout"
        listing = await ToolRunner(tools).run(call("list_directory", path=str(workspace)))
        assert "[DIR] notes" in listing.content


async def test_a_killed_server_is_a_tool_error_and_restarts(workspace: Path) -> None:
    async with MCPClient(["node", str(ENTRY), str(workspace)], name="fs") as client:
        runner = ToolRunner(await client.tools())
        first = children_running(ENTRY)
        assert len(first) == 1
        os.kill(first[0], signal.SIGKILL)
        path = str(workspace / "notes/falcon.txt")
        killed = await runner.run(call("read_text_file", path=path))
        assert killed.error == "failed"
        assert "MCP server 'fs' closed the connection" in killed.content
        again = await runner.run(call("read_text_file", path=path))
        assert again.content == "Falcon battery: 42 minutes\n"
        assert children_running(ENTRY) != first
