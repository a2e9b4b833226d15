"""``http_tools`` against hostile servers and tricky allow-lists, on real loopback sockets."""

import socket
import threading
import time

import httpx
import pytest

from plait.errors import ConfigError, ToolError, ToolPermissionError, ToolTimeout
from plait.tools import http_tools

# A generous bound on waiting for the server thread (not a timing assertion).
_GUARD_S = 30


class _RawServer:
    """A one-connection HTTP server on loopback that sends a body as told and counts it.

    ``closed_early`` says whether the client hung up before the whole body was sent.
    """

    def __init__(self, body_size, *, chunk=65536, pause_s=0.0, family=socket.AF_INET):
        self.body_size, self.chunk, self.pause_s = body_size, chunk, pause_s
        self.sent = 0
        self.closed_early = False
        self.done = threading.Event()
        self.listener = socket.socket(family)
        self.listener.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            self.done.set()
            return
        with conn:
            # A small send buffer: what the server counts as sent is close to what the client read.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(65536)
                if not data:
                    break
                request += data
            try:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Length: %d\r\n\r\n" % self.body_size
                )
                while self.sent < self.body_size:
                    piece = b"a" * min(self.chunk, self.body_size - self.sent)
                    conn.sendall(piece)
                    self.sent += len(piece)
                    if self.pause_s:
                        time.sleep(self.pause_s)
            except OSError:  # broken pipe / reset: the client hung up
                self.closed_early = True
        self.done.set()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.listener.close()
        self.done.wait(_GUARD_S)


async def test_a_huge_body_is_cut_without_being_downloaded():
    body = 64 * 1024 * 1024
    with _RawServer(body) as server:
        tools = http_tools([f"127.0.0.1:{server.port}"], max_response_chars=1000)
        got = await tools["http_get"].acall({"url": f"http://127.0.0.1:{server.port}/big"})
        assert server.done.wait(_GUARD_S)
    assert got == "HTTP 200\n" + "a" * 1000 + "\n[... response truncated]"
    assert server.closed_early
    assert server.sent < body // 4, server.sent


async def test_a_dripping_server_is_cut_at_the_deadline():
    # 200 bytes, one every 50 ms: each wait for a byte is short, the whole body is not.
    with _RawServer(200, chunk=1, pause_s=0.05) as server:
        tools = http_tools([f"127.0.0.1:{server.port}"], timeout_s=1.0)
        with pytest.raises(ToolTimeout, match="did not finish within 1 s"):
            await tools["http_get"].acall({"url": f"http://127.0.0.1:{server.port}/drip"})
        assert server.done.wait(_GUARD_S)
    assert server.closed_early and server.sent < 200


async def test_a_short_body_is_whole_and_untouched():
    with _RawServer(10) as server:
        tools = http_tools([f"127.0.0.1:{server.port}"], max_response_chars=10)
        got = await tools["http_get"].acall({"url": f"http://127.0.0.1:{server.port}/"})
    assert got == "HTTP 200\n" + "a" * 10


# -- IPv6 allow-list entries --------------------------------------------------------


def _ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")


@needs_ipv6
@pytest.mark.parametrize("entry", ["[::1]:{port}", "::1", "[::1]", "[0:0:0:0:0:0:0:1]:{port}"])
async def test_ipv6_entries_match(entry):
    with _RawServer(2, family=socket.AF_INET6) as server:
        tools = http_tools([entry.format(port=server.port)])
        got = await tools["http_get"].acall({"url": f"http://[::1]:{server.port}/"})
    assert got == "HTTP 200\naa"


async def test_an_ipv6_entry_with_a_port_allows_that_port_only():
    tools = http_tools(["[::1]:8080"])
    with pytest.raises(ToolPermissionError, match=r"'\[::1\]:8081' is not allowed"):
        await tools["http_get"].acall({"url": "http://[::1]:8081/"})
    with pytest.raises(ToolPermissionError, match="allowed: \\[::1\\]:8080"):
        await tools["http_get"].acall({"url": "http://[::2]:8080/"})


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("::1:8080", "ambiguous: write '\\[::1\\]:8080' for a port"),
        ("fe80::1:443", "ambiguous"),
        ("[::1]:http", "not a port"),
        ("[::1]:0", "not a port"),
        ("example.com:99999", "not a port"),
        ("[::1", "'\\[' without '\\]'"),
        ("[example.com]:80", "not an IPv6 address"),
        ("[::1]8080", "expected ':PORT'"),
        ("http://example.com", "not a host name"),
        ("user@example.com", "not a host name"),
        ("example.com:", "not a port"),
        ("", "not a host name"),
    ],
)
def test_bad_or_ambiguous_entries_are_refused_naming_the_entry(entry, why):
    with pytest.raises(ConfigError, match=why) as caught:
        http_tools(["example.org", entry])
    assert repr(entry) in str(caught.value)


# -- what held: the allow-list against tricks ---------------------------------------


def _answering(seen):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, text="ok")

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000@evil.example/",  # userinfo that looks like the host
        "http://evil.example#@127.0.0.1:8000/",
        "http://2130706433:8000/",  # 127.0.0.1 as one number
        "http://0x7f000001:8000/",
        "http://127.1:8000/",
        "http://[::ffff:127.0.0.1]:8000/",
        "http://127.0.0.1:8001/",  # another port
        "http://127.0.0.1/",
        "ftp://127.0.0.1:8000/",
        "file:///etc/passwd",
    ],
)
async def test_tricks_do_not_pass_the_allow_list(url):
    seen: list[str] = []
    tools = http_tools(["127.0.0.1:8000"], transport=_answering(seen))
    with pytest.raises(ToolError):
        await tools["http_get"].acall({"url": url})
    assert seen == []


async def test_a_pinned_default_port_allows_the_url_without_one():
    seen: list[str] = []
    tools = http_tools(["api.example.com:443"], transport=_answering(seen))
    assert await tools["http_get"].acall({"url": "https://API.example.com/x"}) == "HTTP 200\nok"
    with pytest.raises(ToolPermissionError):
        await tools["http_get"].acall({"url": "http://api.example.com/x"})  # port 80
    assert seen == ["https://api.example.com/x"]
