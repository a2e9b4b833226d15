"""Memory against a real Chroma server (`chroma run`) on a free loopback port."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _servers import free_port, running_server

from plait.errors import MemoryStoreError
from plait.memory import ChromaStore, E5Embedder, Memory


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    chroma = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    if not Path(chroma).exists():
        pytest.fail("the 'chroma' command (installed with chromadb) was not found")
    data = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    command = [
        chroma,
        "run",
        "--path",
        str(data / "db"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    ready = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    try:
        with running_server(command, ready, log_path=data / "server.log", timeout_s=60, env=env):
            yield port
    finally:
        shutil.rmtree(data, ignore_errors=True)


async def test_remember_and_recall_through_a_chroma_server(chroma_server: int, tmp_path):
    store = ChromaStore(host="127.0.0.1", port=chroma_server)
    writer = Memory("served", store=store, embedder=E5Embedder())
    await writer.remember("The on-call rotation changes every Wednesday at noon.", source="user")
    await writer.remember("The canteen serves vegetarian food on Mondays.", source="user")
    # A second client (another process would do the same) sees the same records.
    reader = Memory("served", store=ChromaStore(host="127.0.0.1", port=chroma_server))
    result = await reader.recall("when does the pager duty schedule switch?", k=1)
    assert "Wednesday" in result.memories[0].text
    assert await reader.count() == 2
    assert not (tmp_path / "memory").exists()  # nothing was written locally


async def test_unreachable_server_is_reported():
    store = ChromaStore(host="127.0.0.1", port=free_port())
    with pytest.raises(MemoryStoreError, match="cannot reach the Chroma server"):
        await Memory("x", store=store, embedder=E5Embedder()).count()
