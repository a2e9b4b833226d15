"""``OpenAIBackend``: any OpenAI-compatible chat-completions server over httpx."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import httpx

from plait._http import read_capped
from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk, Timings
from plait.errors import (
    BackendError,
    BackendProtocolError,
    BackendStreamTruncated,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
)
from plait.retry import RetryPolicy

from .._base import Backend, Capabilities
from ._quote import quote
from ._retry import HTTP_RETRY, error_from_response, retry_after_seconds
from ._stream import StreamAssembler, sse_events, sse_lines
from ._wire import SchemaMode, chat_body, finish_reason, parse_tool_calls, parse_usage

__all__ = ["OpenAIBackend"]

# Headers whose values are credentials (never shown in an error message).
_SECRET_HEADER = re.compile(r"(?i)auth|key|token|secret|cookie")


class OpenAIBackend(Backend):
    """A model behind an OpenAI-compatible HTTP API (OpenAI, vLLM, SGLang, llama.cpp, Ollama).

    One ``httpx.AsyncClient`` is shared by every request of this backend and
    created on the first one (the constructor does no I/O). Connect errors,
    408/429 (honouring ``Retry-After``) and 5xx answers are retried per the
    :class:`~plait.retry.RetryPolicy` (exponential backoff, full jitter); other
    4xx answers are not. A connection that could not be opened is not retried
    when the request says so (``ChatRequest.retry_connect=False``: a fallback
    router has another backend to ask). A stream is only retried before its
    first byte. Response bodies are read as streams and capped
    (``max_response_bytes``); ``timeout`` is one deadline per try, not per read.
    A stream that ends without ``[DONE]`` raises
    :class:`~plait.errors.BackendStreamTruncated`: a cut-off answer is never
    passed off as complete. Error messages quote at most a few hundred
    characters of what the server sent, with credentials blanked out.

    The API key is read from the environment variable ``api_key_env`` when the
    client is created and sent only as the ``Authorization`` header; it is never
    stored on the backend, logged, or shown by ``repr``. A missing variable
    means no key (local servers rarely want one).

    Args:
        model: model name sent with every request.
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key_env: environment variable holding the API key (``None``: no key).
        headers: extra headers sent with every request.
        timeout: the longest one try of a request may take, as one deadline (not
            per read, so a server dripping bytes cannot stretch it): connecting,
            the response headers and the whole body of a plain answer. A stream's
            first event is due within ``timeout`` of sending, and each later event
            within ``timeout`` of the one before, so a long answer that keeps
            coming is not cut off.
        connect_timeout: seconds to establish a connection (within ``timeout``).
        max_response_bytes: the largest response body read (a stream counts all its
            events together); past it the request fails with
            ``BackendProtocolError`` naming the cap, and nothing more is read.
        retry: the retry policy (default :data:`DEFAULT_RETRY`).
        schema_mode: how ``response_schema`` is sent (see :data:`SchemaMode`).
        stream_usage: ask for a final usage event in streams (``stream_options``).
        extra_body: fields merged into every chat body (e.g. ``{"cache_prompt": True}``
            for llama.cpp's server, or ``{"top_k": 40}``).
        embedding_model: model name for :meth:`embed` (default: ``model``).
        send_priority: send each request's ``priority`` in the chat body (vLLM
            and SGLang schedule by it; other servers reject unknown fields, so
            off by default).
        max_connections: connection-pool size.
        name: backend name for traces and routers (default ``openai:<model>``).
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
        capabilities: what this server supports.
    """

    DEFAULT_RETRY = HTTP_RETRY
    """Three tries, waits from 0.5 s doubling to at most 8 s, full jitter."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_response_bytes: int = 64 * 1024 * 1024,
        retry: RetryPolicy | None = None,
        schema_mode: SchemaMode = "json_schema",
        stream_usage: bool = True,
        extra_body: Mapping[str, Any] | None = None,
        embedding_model: str | None = None,
        max_connections: int = 16,
        name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        capabilities: Capabilities | None = None,
        send_priority: bool = False,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        if timeout <= 0 or connect_timeout <= 0:
            raise ConfigError("OpenAIBackend timeouts must be positive")
        if max_response_bytes < 1:
            raise ConfigError(
                f"OpenAIBackend max_response_bytes must be positive, got {max_response_bytes}"
            )
        if schema_mode not in ("json_schema", "json_object"):
            raise ConfigError(
                f"schema_mode must be 'json_schema' or 'json_object', not {schema_mode!r}"
            )
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.name = name or f"openai:{model}"
        self.capabilities = capabilities or Capabilities(
            native_tool_calls=True, json_schema_output=True, embeddings=True, prefix_cache=True
        )
        self._api_key_env = api_key_env
        self._headers = dict(headers or {})
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._timeout_s = timeout
        self._max_bytes = max_response_bytes
        self._retry = retry or self.DEFAULT_RETRY
        self._schema_mode: SchemaMode = schema_mode
        self._stream_usage = stream_usage
        self._extra = dict(extra_body or {})
        self._send_priority = send_priority
        self._embedding_model = embedding_model or model
        self._limits = httpx.Limits(max_connections=max_connections)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._rng = random.Random()
        # Replaced in tests to observe the waits without spending them.
        self._sleep = asyncio.sleep

    def cache_identity(self) -> dict[str, Any]:
        """The server, its model and the request options that change answers."""
        return {
            **super().cache_identity(),
            "model": self.model,
            "base_url": self.base_url,
            "schema_mode": self._schema_mode,
            "extra_body": self._extra,
        }

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Accept": "application/json", **self._headers}
            key = os.environ.get(self._api_key_env) if self._api_key_env else None
            if key:
                headers["Authorization"] = f"Bearer {key}"
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=self._timeout,
                limits=self._limits,
                transport=self._transport,
            )
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        """What a copy in another process needs (a Ray worker): the settings, never
        this process's connection pool (the copy opens its own on first use)."""
        state = self.__dict__.copy()
        state["_client"] = None
        return state

    async def aclose(self) -> None:
        """Close the shared connection pool (a later request opens a new one)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _secrets(self) -> tuple[str, ...]:
        """Values error messages must never show: the key and other credential headers."""
        if self._client is None:
            return ()
        found: list[str] = []
        for header, value in self._client.headers.items():
            if _SECRET_HEADER.search(header):
                found.append(value)
                found.append(value.partition(" ")[2])  # the token of "Bearer <token>"
        return tuple(v for v in found if v)

    def _too_big(self, url: str) -> BackendProtocolError:
        return BackendProtocolError(
            f"{url} sent a response body over the size cap of {self._max_bytes} bytes "
            "(max_response_bytes); reading stopped there"
        )

    def _deadline_passed(self, url: str, what: str) -> BackendTimeout:
        return BackendTimeout(
            f"{url} did not {what} within the {self._timeout_s:g} s timeout "
            "(a deadline for the whole wait, not for each read)"
        )

    async def _attempt(
        self, client: httpx.AsyncClient, path: str, content: bytes, url: str, read_body: bool
    ) -> tuple[httpx.Response, bytes, bool]:
        """One try: send, and read the body (capped) unless a 2xx stream is wanted."""
        request = client.build_request(
            "POST", path, content=content, headers={"Content-Type": "application/json"}
        )
        response = await client.send(request, stream=True)
        if response.status_code < 400 and not read_body:
            return response, b"", False
        try:
            payload, over = await read_capped(response, self._max_bytes)
        except httpx.TimeoutException as e:
            raise BackendTimeout(f"{url} stopped answering mid-body") from e
        except httpx.TransportError as e:
            raise BackendUnavailable(f"reading {url} failed: {e!r}") from e
        finally:
            await response.aclose()
        return response, payload, over

    async def _open(
        self, path: str, body: dict[str, Any], *, read_body: bool, retry_connect: bool = True
    ) -> tuple[httpx.Response, bytes, float]:
        """POST ``body``; return a 2xx response, its body (when ``read_body``) and when it was sent.

        Each try has one deadline, ``timeout``, for connecting, the headers and
        (``read_body``) the whole body; the time it was sent is the event loop's
        clock. Connect failures and error answers are retried as the policy
        says; a connection that could not be opened is tried once when
        ``retry_connect`` is false. Without ``read_body`` the response is still
        open and the caller must close it.
        """
        client = self._get_client()
        url = f"{self.base_url}{path}"
        content = json.dumps(body, ensure_ascii=False).encode()
        policy = self._retry
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            cause: BaseException | None = None
            sent_at = loop.time()
            tried = f"{attempt} attempt(s)"
            try:
                async with asyncio.timeout(self._timeout_s):
                    response, payload, over = await self._attempt(
                        client, path, content, url, read_body
                    )
            except TimeoutError as e:
                what = "answer" if read_body else "send its response headers"
                raise self._deadline_passed(url, what) from e
            # A connection never opened (refused, or no answer to the connect)
            # is told apart: the caller may have somewhere else to go at once.
            except httpx.ConnectTimeout as e:
                cause, connected = e, False
                error: BackendError = BackendTimeout(
                    f"could not connect to {url} within the connect timeout ({tried})"
                )
            except httpx.ConnectError as e:
                cause, connected = e, False
                error = BackendUnavailable(f"could not reach {url} ({tried}): {e}")
            except httpx.RemoteProtocolError as e:
                cause, connected = e, True
                error = BackendUnavailable(f"could not reach {url} ({tried}): {e}")
            except httpx.TimeoutException as e:
                raise BackendTimeout(f"{url} did not answer in time ({e!r})") from e
            except httpx.TransportError as e:
                raise BackendUnavailable(f"request to {url} failed: {e!r}") from e
            else:
                if response.status_code < 400:
                    if over:
                        raise self._too_big(url)
                    return response, payload, sent_at
                error = error_from_response(
                    response, payload, secrets=self._secrets(), truncated=over
                )
                connected = True
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if (
                attempt >= policy.max_attempts
                or (not connected and not retry_connect)
                or not policy.should_retry(error)
            ):
                raise error from cause
            await self._sleep(policy.delay(attempt, self._rng, retry_after=retry_after))

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        _, payload, _ = await self._open(path, body, read_body=True)
        return _json_object(payload, f"{self.base_url}{path}", self._secrets())

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        body = chat_body(
            request,
            model=self.model,
            stream=False,
            schema_mode=self._schema_mode,
            stream_usage=False,
            extra=self._extra,
            send_priority=self._send_priority,
        )
        _, payload, _ = await self._open(
            "/chat/completions", body, read_body=True, retry_connect=request.retry_connect
        )
        url = f"{self.base_url}/chat/completions"
        data = _json_object(payload, url, self._secrets())
        return _completion(data, started, f"{self.base_url}/chat/completions", self._secrets())

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        started = time.perf_counter()
        body = chat_body(
            request,
            model=self.model,
            stream=True,
            schema_mode=self._schema_mode,
            stream_usage=self._stream_usage,
            extra=self._extra,
            send_priority=self._send_priority,
        )
        response, _, sent_at = await self._open(
            "/chat/completions", body, read_body=False, retry_connect=request.retry_connect
        )
        url = str(response.request.url)
        secrets = self._secrets()
        loop = asyncio.get_running_loop()
        try:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # A server that ignores "stream": answer in one piece.
                try:
                    async with asyncio.timeout_at(sent_at + self._timeout_s):
                        payload, over = await read_capped(response, self._max_bytes)
                except TimeoutError as e:
                    raise self._deadline_passed(url, "answer") from e
                except httpx.TimeoutException as e:
                    raise BackendTimeout(f"{url} stopped answering mid-body") from e
                except httpx.TransportError as e:
                    raise BackendUnavailable(f"reading {url} failed: {e!r}") from e
                if over:
                    raise self._too_big(url)
                data = _json_object(payload, url, secrets)
                completion = _completion(data, started, url, secrets)
                if completion.text:
                    yield StreamChunk(delta=completion.text)
                yield StreamChunk(completion=completion)
                return
            assembler = StreamAssembler(secrets=secrets)
            first_token_at: float | None = None
            lines = sse_lines(response.aiter_bytes(), max_bytes=self._max_bytes, url=url)
            events = sse_events(lines, url=url, secrets=secrets)
            # The first event is due within the timeout of sending; each next one
            # within the timeout of the one before. No yield inside the deadline.
            deadline = sent_at + self._timeout_s
            got_event = False
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                except TimeoutError as e:
                    what = "send its next event" if got_event else "start streaming"
                    raise self._deadline_passed(url, what) from e
                except BackendStreamTruncated:
                    raise BackendStreamTruncated(url, "".join(assembler.text)) from None
                except httpx.TimeoutException as e:
                    raise BackendTimeout(f"{url} stopped streaming within the timeout") from e
                except httpx.TransportError as e:
                    raise BackendUnavailable(f"stream from {url} broke off: {e!r}") from e
                got_event = True
                deadline = loop.time() + self._timeout_s
                added = assembler.feed(event)
                if added:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                    yield StreamChunk(delta=added)
        finally:
            await response.aclose()
        tool_calls = assembler.tool_calls()
        finish = assembler.finish
        if tool_calls and finish == "stop":
            finish = "tool_calls"
        completion = Completion(
            text="".join(assembler.text),
            tool_calls=tool_calls,
            finish_reason=finish,
            usage=assembler.usage,
            timings=Timings(
                first_token_s=None if first_token_at is None else first_token_at - started,
                total_s=time.perf_counter() - started,
            ),
            model=assembler.model or self.model,
        )
        yield StreamChunk(completion=completion)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` with the server's ``/embeddings`` endpoint, in input order."""
        if isinstance(texts, str):
            raise ConfigError("embed() takes a sequence of strings, not one string")
        if not texts:
            return []
        data = await self._post_json(
            "/embeddings", {"model": self._embedding_model, "input": list(texts)}
        )
        url = f"{self.base_url}/embeddings"
        try:
            items = sorted(data["data"], key=lambda item: item.get("index", 0))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BackendProtocolError(f"{url} sent no readable embeddings: {e!r}") from e
        if len(vectors) != len(texts):
            raise BackendProtocolError(
                f"{url} returned {len(vectors)} embeddings for {len(texts)} texts"
            )
        return vectors


def _json_object(payload: bytes, url: str, secrets: Sequence[str] = ()) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError as e:
        shown = quote(payload, secrets)
        raise BackendProtocolError(f"{url} answered with invalid JSON: {shown!r}") from e
    if not isinstance(data, dict):
        shown = quote(payload, secrets)
        raise BackendProtocolError(f"{url} answered with JSON that is not an object: {shown}")
    return data


def _shown(value: Any, secrets: Sequence[str]) -> str:
    return quote(json.dumps(value, ensure_ascii=False, default=str), secrets)


def _completion(
    data: dict[str, Any], started: float, url: str, secrets: Sequence[str] = ()
) -> Completion:
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as e:
        raise BackendProtocolError(
            f"{url} answered without choices[0].message: {_shown(data, secrets)}"
        ) from e
    if not isinstance(message, dict):
        raise BackendProtocolError(
            f"{url} answered with a malformed message: {_shown(message, secrets)}"
        )
    tool_calls = parse_tool_calls(message.get("tool_calls"))
    finish = finish_reason(choice.get("finish_reason"))
    if tool_calls and finish == "stop":
        finish = "tool_calls"
    return Completion(
        text=message.get("content") or "",
        tool_calls=tool_calls,
        finish_reason=finish,
        usage=parse_usage(data.get("usage")),
        timings=Timings(total_s=time.perf_counter() - started),
        model=str(data.get("model") or ""),
    )
