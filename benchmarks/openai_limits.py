"""OpenAIBackend against a huge body and a dripping server, on loopback.

- ``huge_body_rss_mb``: growth of the process's peak RSS while a server sends a
  ``--body-mb`` body (answered with the size-cap error at ``--cap-mb``);
  ``huge_body_sent_mb``: how much the server got to send before the client hung up.
- ``drip_s``: how long a request with ``timeout=--timeout`` takes to fail against a
  server that sends one byte of a 2,000-byte body every 20 ms (the per-read timeout
  alone would let it run 40 s); ``drip_ratio`` is that over the timeout.

    python benchmarks/openai_limits.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import threading
import time

from plait import ChatRequest
from plait.backends import OpenAIBackend
from plait.errors import BackendProtocolError, BackendTimeout
from plait.retry import RetryPolicy


def _serve(handler) -> tuple[int, dict[str, int]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    sent = {"bytes": 0}

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            try:
                handler(conn, sent)
            except OSError:
                pass
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1], sent


def _huge(size: int):
    def handler(conn: socket.socket, sent: dict[str, int]) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b" " * 65536
        while sent["bytes"] < size:
            conn.sendall(chunk)
            sent["bytes"] += len(chunk)

    return handler


def _drip(conn: socket.socket, sent: dict[str, int]) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n")
    for _ in range(2000):
        conn.sendall(b" ")
        sent["bytes"] += 1
        time.sleep(0.02)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(body_mb: int, cap_mb: int, timeout: float) -> dict[str, float]:
    request = ChatRequest.from_prompt("hi")
    port, sent = _serve(_huge(body_mb * 1024 * 1024))
    backend = OpenAIBackend(
        "m",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key_env=None,
        retry=RetryPolicy(max_attempts=1),
        max_response_bytes=cap_mb * 1024 * 1024,
    )
    before = _rss_mb()
    try:
        await backend.complete(request)
    except BackendProtocolError:
        pass
    grown = _rss_mb() - before
    await backend.aclose()
    huge_sent = sent["bytes"] / 1024 / 1024

    port, _ = _serve(_drip)
    backend = OpenAIBackend(
        "m",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key_env=None,
        retry=RetryPolicy(max_attempts=1),
        timeout=timeout,
    )
    started = time.perf_counter()
    try:
        await backend.complete(request)
    except BackendTimeout:
        pass
    drip = time.perf_counter() - started
    await backend.aclose()
    return {
        "body_mb": body_mb,
        "cap_mb": cap_mb,
        "huge_body_rss_mb": round(grown, 1),
        "huge_body_sent_mb": round(huge_sent, 1),
        "timeout_s": timeout,
        "drip_s": round(drip, 2),
        "drip_ratio": round(drip / timeout, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body-mb", type=int, default=300)
    parser.add_argument("--cap-mb", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object (default)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.body_mb, args.cap_mb, args.timeout))))
