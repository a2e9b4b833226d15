"""OpenAIBackend against faulty and hostile servers on real loopback sockets: huge bodies,
dripping bytes, streams cut off before ``[DONE]``, and error payloads that echo secrets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from plait import ChatRequest, ToolSpec
from plait.backends import OpenAIBackend
from plait.backends.openai._quote import MAX_QUOTE, quote, redact
from plait.backends.routing import FallbackRouter
from plait.backends.testing import ScriptedBackend
from plait.errors import (
    BackendHTTPError,
    BackendProtocolError,
    BackendStreamTruncated,
    BackendTimeout,
    ConfigError,
)
from plait.retry import RetryPolicy

# A generous bound on waiting for the server thread (not a timing assertion).
_GUARD_S = 30
REQUEST = ChatRequest.from_prompt("hello", max_tokens=5)
KEY = "sk-test-0123456789abcdefghijklmnop"


class _Server:
    """A loopback HTTP server that answers every connection with ``handler(send)``.

    ``handler`` gets a ``send(bytes)`` that raises ``OSError`` once the client
    has hung up; ``hung_up`` records that, ``sent`` counts body bytes sent.
    """

    def __init__(self, handler: Callable[[Callable[[bytes], None]], None]) -> None:
        self.handler = handler
        self.sent = 0
        self.hung_up = threading.Event()
        self.served = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(65536)
                    if not data:
                        break
                    request += data
                head, _, body = request.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                while len(body) < length:
                    data = conn.recv(65536)
                    if not data:
                        break
                    body += data

                def send(data: bytes, conn: socket.socket = conn) -> None:
                    conn.sendall(data)
                    self.sent += len(data)

                try:
                    self.handler(send)
                except OSError:
                    self.hung_up.set()
                self.served.set()

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()


def _head(content_type: str = "application/json", length: int | None = None) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode()


def _backend(url: str, **kwargs) -> OpenAIBackend:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=1))
    return OpenAIBackend("m", base_url=url, api_key_env=None, **kwargs)


# -- #9: byte cap --------------------------------------------------------------------


async def test_a_huge_body_stops_at_the_cap_with_an_error_naming_it():
    size = 300 * 1024 * 1024

    def huge(send):
        send(_head(length=size))
        chunk = b" " * 65536
        for _ in range(size // len(chunk)):
            send(chunk)

    with _Server(huge) as server:
        backend = _backend(server.url, max_response_bytes=1_000_000)
        with pytest.raises(BackendProtocolError, match="size cap of 1000000 bytes") as caught:
            await backend.complete(REQUEST)
        assert server.served.wait(_GUARD_S)
        await backend.aclose()
    assert "max_response_bytes" in str(caught.value)
    assert server.hung_up.is_set() and server.sent < size // 10, server.sent


async def test_an_endless_stream_stops_at_the_cap():
    event = b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'

    def endless(send):
        send(_head("text/event-stream"))
        for _ in range(10_000_000):
            send(event * 1000)

    with _Server(endless) as server:
        backend = _backend(server.url, max_response_bytes=2_000_000)
        with pytest.raises(BackendProtocolError, match="size cap of 2000000 bytes"):
            async for _ in backend.stream(REQUEST):
                pass
        assert server.served.wait(_GUARD_S)
        await backend.aclose()
    assert server.hung_up.is_set()


async def test_an_error_body_is_read_only_up_to_the_cap():
    size = 50 * 1024 * 1024

    def huge_error(send):
        send(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        for _ in range(size // 65536):
            send(b"x" * 65536)

    with _Server(huge_error) as server:
        backend = _backend(server.url, max_response_bytes=100_000)
        with pytest.raises(BackendHTTPError, match="cut at the byte cap") as caught:
            await backend.complete(REQUEST)
        assert server.served.wait(_GUARD_S)
        await backend.aclose()
    assert len(str(caught.value)) < MAX_QUOTE + 200
    assert server.sent < size // 10


def test_the_cap_must_be_positive():
    with pytest.raises(ConfigError, match="max_response_bytes"):
        OpenAIBackend("m", max_response_bytes=0)


# -- #9: one deadline per request ----------------------------------------------------


def _drip(head: bytes, body: bytes, pause_s: float = 0.05):
    def handler(send):
        send(head)
        for i in range(len(body)):
            send(body[i : i + 1])
            time.sleep(pause_s)

    return handler


async def test_a_dripping_body_is_cut_at_the_deadline():
    # ~20 s of body, one byte every 50 ms: each read is quick, the whole body is not.
    body = json.dumps({"choices": [{"message": {"content": "x" * 300}}]}).encode()
    with _Server(_drip(_head(length=len(body)), body)) as server:
        backend = _backend(server.url, timeout=1.0)
        with pytest.raises(BackendTimeout, match="within the 1 s timeout") as caught:
            await backend.complete(REQUEST)
        assert server.served.wait(_GUARD_S)
        await backend.aclose()
    assert "not for each read" in str(caught.value)
    assert server.hung_up.is_set() and server.sent < len(body)


async def test_dripping_headers_are_cut_at_the_deadline():
    head = _head(length=2) + b"{}"

    def handler(send):
        for i in range(len(head)):
            send(head[i : i + 1])
            time.sleep(0.1)

    with _Server(handler) as server:
        backend = _backend(server.url, timeout=1.0)
        with pytest.raises(BackendTimeout, match="send its response headers"):
            async for _ in backend.stream(REQUEST):
                pass
        assert server.served.wait(_GUARD_S)
        await backend.aclose()
    assert server.hung_up.is_set()


async def test_a_stream_dripping_one_event_is_cut_at_the_deadline():
    # Bytes keep coming but no event ever completes: the idle gap is what counts.
    event = b'data: {"choices": [{"delta": {"content": "' + b"a" * 400 + b'"}}]}\n\n'
    with _Server(_drip(_head("text/event-stream"), event)) as server:
        backend = _backend(server.url, timeout=1.0)
        with pytest.raises(BackendTimeout, match="start streaming"):
            async for _ in backend.stream(REQUEST):
                pass
        assert server.served.wait(_GUARD_S)
        await backend.aclose()
    assert server.hung_up.is_set()


async def test_a_stream_whose_events_keep_coming_outlives_the_timeout():
    # 15 events 0.2 s apart: 3 s in all with a 2 s timeout, each gap far within it.
    def handler(send):
        send(_head("text/event-stream"))
        for i in range(15):
            send(b'data: {"choices": [{"delta": {"content": "%d "}}]}\n\n' % i)
            time.sleep(0.2)
        send(b"data: [DONE]\n\n")

    with _Server(handler) as server:
        backend = _backend(server.url, timeout=2.0)
        chunks = [c async for c in backend.stream(REQUEST)]
        await backend.aclose()
    assert chunks[-1].completion.text == "".join(f"{i} " for i in range(15))


# -- #11: a stream without [DONE] ----------------------------------------------------


def _stream_server(events: list[dict], done: bool):
    def handler(send):
        send(_head("text/event-stream"))
        for event in events:
            send(b"data: " + json.dumps(event).encode() + b"\n\n")
        if done:
            send(b"data: [DONE]\n\n")

    return handler


_TEXT = [{"choices": [{"delta": {"content": "The answer is"}}]}]
_TOOL = [
    {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "add"}}]}}]},
    {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}}]},
]


async def test_a_stream_cut_before_done_is_a_truncation_error_with_the_partial_text():
    with _Server(_stream_server(_TEXT, done=False)) as server:
        backend = _backend(server.url)
        deltas = []
        with pytest.raises(BackendStreamTruncated, match="without its end marker") as caught:
            async for chunk in backend.stream(REQUEST):
                deltas.append(chunk.delta)
        await backend.aclose()
    assert caught.value.partial == "The answer is" and deltas == ["The answer is"]
    assert isinstance(caught.value, BackendProtocolError)


async def test_the_same_stream_with_done_is_complete():
    with _Server(_stream_server(_TEXT, done=True)) as server:
        backend = _backend(server.url)
        chunks = [c async for c in backend.stream(REQUEST)]
        await backend.aclose()
    assert chunks[-1].completion.text == "The answer is"


async def test_the_router_falls_back_when_a_stream_is_truncated():
    tool = ToolSpec(name="add", parameters={"type": "object", "properties": {}})
    fallback = ScriptedBackend(["from the fallback", "again the fallback"], name="local")
    with (
        _Server(_stream_server(_TEXT, done=False)) as text_server,
        _Server(_stream_server(_TOOL, done=False)) as tool_server,
    ):
        # complete(): nobody saw the partial text, so the cut-off answer is passed over.
        remote = _backend(text_server.url, name="remote")
        router = FallbackRouter([remote, fallback])
        completion = await router.complete(REQUEST)
        assert completion.text == "from the fallback"
        failed, served = router.decisions
        assert (failed.backend, failed.outcome) == ("remote", "error")
        assert "BackendStreamTruncated" in (failed.error or "")
        assert (served.backend, served.outcome) == ("local", "ok")
        assert "BackendStreamTruncated" in served.skipped[0]
        # stream(): a cut-off tool call streamed no text, so it falls back too.
        remote_tools = _backend(tool_server.url, name="remote")
        router = FallbackRouter([remote_tools, fallback])
        request = ChatRequest.from_prompt("add", tools=(tool,))
        chunks = [c async for c in router.stream(request)]
        assert chunks[-1].completion.text == "again the fallback"
        await remote.aclose()
        await remote_tools.aclose()


async def test_the_router_raises_the_truncation_once_text_was_streamed():
    fallback = ScriptedBackend(["unused"], name="local")
    with _Server(_stream_server(_TEXT, done=False)) as server:
        remote = _backend(server.url, name="remote")
        router = FallbackRouter([remote, fallback])
        with pytest.raises(BackendStreamTruncated):
            async for _ in router.stream(REQUEST):
                pass
        await remote.aclose()
    assert router.breaker(remote).failures == 1 and len(fallback.requests) == 0


# -- #12: payloads in errors are cut and redacted ------------------------------------


def _echo_server(status: int, body: bytes, content_type: str = "application/json"):
    def handler(send):
        send(
            b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, content_type.encode(), len(body))
        )
        send(body)

    return handler


_ECHO = (
    f"request headers: Authorization: Bearer {KEY}\r\nX-Api-Key: {KEY}\r\n"
    f'{{"api_key": "{KEY}", "authorization": "Bearer abcdefgh12345678"}}'
)


_FLAT = _ECHO.replace("\r\n", " ")
_PAYLOADS = {
    # error_from_response: a 5 MB error page that echoes the request headers; an error object.
    "error-page": (400, (_ECHO + "x" * 5_200_000).encode(), BackendHTTPError, False),
    "error-json": (
        400, json.dumps({"error": {"message": _ECHO + "y" * 10**5}}).encode(),
        BackendHTTPError, False,
    ),
    # _json_object: invalid JSON.
    "invalid-json": (200, (_ECHO + "z" * 1_000_000).encode(), BackendProtocolError, False),
    # _completion: no choices, the echo in the object.
    "no-choices": (
        200, json.dumps({"echo": _ECHO, "pad": "p" * 10**6}).encode(), BackendProtocolError, False
    ),
    # _decode: a malformed event; an error event.
    "bad-event": (200, f"data: {{{_FLAT}{'q' * 100_000}\n\n".encode(), BackendProtocolError, True),
    "error-event": (
        200, b"data: " + json.dumps({"error": {"message": _ECHO * 50}}).encode() + b"\n\n",
        BackendHTTPError, True,
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "error", "stream"), list(_PAYLOADS.values()), ids=list(_PAYLOADS)
)
async def test_errors_quote_a_short_redacted_payload(monkeypatch, status, body, error, stream):
    monkeypatch.setenv("PLAIT_TEST_KEY", KEY)
    content_type = "text/event-stream" if stream else "application/json"
    with _Server(_echo_server(status, body, content_type)) as server:
        backend = OpenAIBackend(
            "m", base_url=server.url, api_key_env="PLAIT_TEST_KEY", retry=RetryPolicy(1)
        )
        with pytest.raises(error) as caught:
            if stream:
                async for _ in backend.stream(REQUEST):
                    pass
            else:
                await backend.complete(REQUEST)
        await backend.aclose()
    message = str(caught.value)
    assert KEY not in message and "abcdefgh12345678" not in message
    assert len(message) < MAX_QUOTE + 200, len(message)
    if isinstance(caught.value, BackendHTTPError):
        assert KEY not in caught.value.server_message
    assert "bytes)" in message  # cut, and the size said


def test_quote_cuts_long_text_and_says_its_size():
    assert quote("short") == "short"
    long = "a" * 10_000
    assert quote(long) == "a" * MAX_QUOTE + "... (10000 bytes)"
    assert quote(b"\xff" * 600).endswith("... (600 bytes)")


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def-ghi_jkl",
        "authorization=Basic dXNlcjpwYXNzd29yZA==",
        '{"Authorization": "tok3n-value-1234"}',
        "Proxy-Authorization: Bearer 0123456789",
        "x-api-key: 0123456789abcdef",
        '"api_key": "secret-value-123"',
        "use bearer abcdefgh12345678 next time",
        "key sk-proj-ABCDEFGHIJKLMNOP1234 leaked",
    ],
)
def test_redact_blanks_credentials(text):
    shown = redact(text)
    assert "***" in shown
    leaked = ("abc.def", "dXNlcj", "tok3n", "0123456789", "secret-value", "abcdefgh", "ABCDEF")
    assert not [secret for secret in leaked if secret in shown], shown


def test_redact_blanks_known_secrets_by_value_and_keeps_the_rest():
    assert redact("the key hunter22 was wrong", ["hunter22"]) == "the key *** was wrong"
    assert redact("nothing to hide here") == "nothing to hide here"


def test_a_secret_straddling_the_cut_is_blanked_whole():
    text = "a" * (MAX_QUOTE - 5) + KEY + "b" * 1000
    shown = quote(text, [KEY])
    assert KEY[:5] not in shown[MAX_QUOTE - 5 :]


async def test_the_api_key_never_reaches_an_error_from_a_mock_server(monkeypatch):
    monkeypatch.setenv("PLAIT_TEST_KEY", KEY)

    def server(request: httpx.Request) -> httpx.Response:
        # Echo every header back, as some proxies' error pages do.
        return httpx.Response(502, text=str(dict(request.headers)) + " " + KEY)

    backend = OpenAIBackend(
        "m",
        base_url="http://test/v1",
        api_key_env="PLAIT_TEST_KEY",
        retry=RetryPolicy(1),
        transport=httpx.MockTransport(server),
    )
    with pytest.raises(BackendHTTPError) as caught:
        await backend.complete(REQUEST)
    assert KEY not in str(caught.value) and "***" in str(caught.value)


# -- the line splitter under the byte cap ---------------------------------------------


async def _lines(chunks: list[bytes], max_bytes: int = 10_000) -> list[str]:
    from plait.backends.openai._stream import sse_lines

    async def source():
        for chunk in chunks:
            yield chunk

    return [line async for line in sse_lines(source(), max_bytes=max_bytes, url="u")]


@pytest.mark.parametrize(
    "chunks",
    [
        [b"a\r\n\r\nb\n"],
        [b"a\r", b"\n", b"\r\nb\n"],  # CRLFs split between chunks
        [b"a\r", b"\n\r", b"\nb", b"\n"],
        [b"a\r", b"\n", b"\nb\n"],  # the blank line after a split CRLF is kept
        [b"a\r\rb\n"],  # bare CRs end lines too
        [b"a\n\nb"],  # no newline at the very end
    ],
)
async def test_lines_split_at_crlf_cr_and_lf_across_chunks(chunks):
    got = await _lines(chunks)
    assert got == ["a", "", "b"], got


async def test_a_character_split_between_chunks_is_kept_whole():
    data = "é✓\n".encode()
    assert await _lines([data[:1], data[1:3], data[3:]]) == ["é✓"]


async def test_the_splitter_stops_at_the_cap():
    with pytest.raises(BackendProtocolError, match="size cap of 10 bytes"):
        await _lines([b"12345", b"67890", b"x"], max_bytes=10)
