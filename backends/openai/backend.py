"""``OpenAIBackend``: any OpenAI-compatible chat-completions server over httpx."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import httpx

from plait.chat import ChatRequest
from plait.completions import Completion, StreamChunk, Timings
from plait.errors import (
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
)

from .._base import Backend, Capabilities
from ._retry import RetryPolicy, error_from_response, retry_after_seconds, should_retry_status
from ._stream import StreamAssembler, sse_events
from ._wire import SchemaMode, chat_body, finish_reason, parse_tool_calls, parse_usage

__all__ = ["OpenAIBackend"]


class OpenAIBackend(Backend):
    """A model behind an OpenAI-compatible HTTP API (OpenAI, vLLM, SGLang, llama.cpp, Ollama).

    One ``httpx.AsyncClient`` is shared by every request of this backend and
    created on the first one (the constructor does no I/O). Connect errors,
    408/429 (honouring ``Retry-After``) and 5xx answers are retried with
    exponential backoff and jitter; other 4xx answers are not. A stream is only
    retried before its first byte.

    The API key is read from the environment variable ``api_key_env`` when the
    client is created and sent only as the ``Authorization`` header; it is never
    stored on the backend, logged, or shown by ``repr``. A missing variable
    means no key (local servers rarely want one).

    Args:
        model: model name sent with every request.
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key_env: environment variable holding the API key (``None``: no key).
        headers: extra headers sent with every request.
        timeout: seconds a request may wait for the server (per read, per request).
        connect_timeout: seconds to establish a connection.
        retry: the retry policy.
        schema_mode: how ``response_schema`` is sent (see :data:`SchemaMode`).
        stream_usage: ask for a final usage event in streams (``stream_options``).
        extra_body: fields merged into every chat body (e.g. ``{"cache_prompt": True}``
            for llama.cpp's server, or ``{"top_k": 40}``).
        embedding_model: model name for :meth:`embed` (default: ``model``).
        max_connections: connection-pool size.
        name: backend name for traces and routers (default ``openai:<model>``).
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
        capabilities: what this server supports.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        schema_mode: SchemaMode = "json_schema",
        stream_usage: bool = True,
        extra_body: Mapping[str, Any] | None = None,
        embedding_model: str | None = None,
        max_connections: int = 16,
        name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        capabilities: Capabilities | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        if timeout <= 0 or connect_timeout <= 0:
            raise ConfigError("OpenAIBackend timeouts must be positive")
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
        self._retry = retry or RetryPolicy()
        self._schema_mode: SchemaMode = schema_mode
        self._stream_usage = stream_usage
        self._extra = dict(extra_body or {})
        self._embedding_model = embedding_model or model
        self._limits = httpx.Limits(max_connections=max_connections)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._rng = random.Random()
        # Replaced in tests to observe the waits without spending them.
        self._sleep = asyncio.sleep

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

    async def aclose(self) -> None:
        """Close the shared connection pool (a later request opens a new one)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _open(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST ``body`` and return the response with a 2xx status, headers read, body not.

        Retries per the policy; the caller must close the response.
        """
        client = self._get_client()
        url = f"{self.base_url}{path}"
        content = json.dumps(body, ensure_ascii=False).encode()
        attempts = self._retry.max_attempts
        for attempt in range(attempts):
            last = attempt == attempts - 1
            retry_after: float | None = None
            try:
                request = client.build_request(
                    "POST", path, content=content, headers={"Content-Type": "application/json"}
                )
                response = await client.send(request, stream=True)
            except httpx.ConnectTimeout as e:
                if last:
                    raise BackendTimeout(
                        f"could not connect to {url} within the connect timeout "
                        f"({attempts} attempt(s))"
                    ) from e
            except (httpx.ConnectError, httpx.RemoteProtocolError) as e:
                if last:
                    raise BackendUnavailable(
                        f"could not reach {url} ({attempts} attempt(s)): {e}"
                    ) from e
            except httpx.TimeoutException as e:
                raise BackendTimeout(f"{url} did not answer in time ({e!r})") from e
            except httpx.TransportError as e:
                raise BackendUnavailable(f"request to {url} failed: {e!r}") from e
            else:
                if response.status_code < 400:
                    return response
                payload = await response.aread()
                await response.aclose()
                error = error_from_response(response, payload)
                if last or not should_retry_status(response.status_code):
                    raise error
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            await self._sleep(self._retry.delay(attempt, retry_after, self._rng))
        raise AssertionError("unreachable: the retry loop always returns or raises")

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._open(path, body)
        try:
            payload = await response.aread()
        except httpx.TimeoutException as e:
            raise BackendTimeout(f"{response.request.url} stopped answering mid-body") from e
        except httpx.TransportError as e:
            raise BackendUnavailable(f"reading {response.request.url} failed: {e!r}") from e
        finally:
            await response.aclose()
        return _json_object(payload, str(response.request.url))

    async def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        body = chat_body(
            request,
            model=self.model,
            stream=False,
            schema_mode=self._schema_mode,
            stream_usage=False,
            extra=self._extra,
        )
        data = await self._post_json("/chat/completions", body)
        return _completion(data, started, f"{self.base_url}/chat/completions")

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        started = time.perf_counter()
        body = chat_body(
            request,
            model=self.model,
            stream=True,
            schema_mode=self._schema_mode,
            stream_usage=self._stream_usage,
            extra=self._extra,
        )
        response = await self._open("/chat/completions", body)
        url = str(response.request.url)
        try:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # A server that ignores "stream": answer in one piece.
                completion = _completion(_json_object(await response.aread(), url), started, url)
                if completion.text:
                    yield StreamChunk(delta=completion.text)
                yield StreamChunk(completion=completion)
                return
            assembler = StreamAssembler()
            first_token_at: float | None = None
            events = sse_events(response.aiter_lines(), url=url)
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                except httpx.TimeoutException as e:
                    raise BackendTimeout(f"{url} stopped streaming within the timeout") from e
                except httpx.TransportError as e:
                    raise BackendUnavailable(f"stream from {url} broke off: {e!r}") from e
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


def _json_object(payload: bytes, url: str) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError as e:
        shown = payload[:200].decode("utf-8", errors="replace")
        raise BackendProtocolError(f"{url} answered with invalid JSON: {shown!r}") from e
    if not isinstance(data, dict):
        raise BackendProtocolError(f"{url} answered with JSON that is not an object: {data!r}")
    return data


def _completion(data: dict[str, Any], started: float, url: str) -> Completion:
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as e:
        raise BackendProtocolError(f"{url} answered without choices[0].message: {data!r}") from e
    if not isinstance(message, dict):
        raise BackendProtocolError(f"{url} answered with a malformed message: {message!r}")
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
