"""Real servers for tests: started on a free loopback port, stopped afterwards."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(
    command: Sequence[str],
    ready_url: str,
    *,
    log_path: Path,
    timeout_s: float = 120,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until ``ready_url`` answers 2xx; terminate it on exit.

    Output goes to ``log_path`` (a pipe nobody reads would fill and block the
    server); its tail is shown when the server exits or never becomes ready.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, env=dict(env) if env else None
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    pytest.fail(f"{command[0]} exited with {process.returncode}: {tail}")
                try:
                    if httpx.get(ready_url, timeout=1.0).is_success:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    pytest.fail(f"{command[0]} was not ready within {timeout_s:g} s: {tail}")
                time.sleep(0.3)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
