"""The MCP test server (``_mcp_server.py``) as a stdio command and as a running HTTP server."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("_mcp_server.py")
COMMAND = [sys.executable, str(SERVER)]
TOKEN = "s3cret"


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The test server on a free loopback port; every request needs the bearer token."""
    port_file = tmp_path / "port"
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*COMMAND, "--http", str(port_file), "--token", TOKEN], stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 60
            while not (port_file.exists() and port_file.read_text()):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the MCP test server did not start: {log_path.read_text()}")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port_file.read_text()}/mcp", process
        finally:
            process.kill()
            process.wait()
