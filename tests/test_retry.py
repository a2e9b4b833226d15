"""One RetryPolicy and one is_transient for HTTP requests, plan tasks and fallbacks; the old
names warn; a request's delivery fields reach neither a cache key nor a server."""

from __future__ import annotations

import asyncio
import importlib
import random

import pytest
from langgraph.errors import GraphInterrupt

from plait import ChatRequest
from plait.backends import OpenAIBackend
from plait.backends._cache import request_key
from plait.backends.openai._wire import chat_body
from plait.errors import (
    BackendHTTPError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    BudgetExceeded,
    ConfigError,
    ContextLengthExceeded,
    ModelOutputError,
    PlanError,
    ToolArgumentError,
    ToolError,
)
from plait.graphs import EagerExecutor
from plait.retry import RetryPolicy, is_transient


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (BackendTimeout("slow"), True),
        (BackendUnavailable("refused"), True),
        (BackendProtocolError("garbled"), True),
        (BackendHTTPError(429, "slow down"), True),
        (BackendHTTPError(408, "timeout"), True),
        (BackendHTTPError(503, "overloaded"), True),
        (BackendHTTPError(400, "bad field"), False),
        (BackendHTTPError(401, "no key"), False),
        (ToolError("busy"), True),
        (TimeoutError(), True),
        (ModelOutputError("not JSON", raw="{"), False),
        (ContextLengthExceeded(9000, 2048), False),
        (BudgetExceeded("spent"), False),
        (ToolArgumentError("add", "missing x"), False),
        (ConfigError("typo"), False),
        (PlanError("cycle"), False),
        (ValueError("a bug"), False),
        (asyncio.CancelledError(), False),
        (GraphInterrupt(()), False),
    ],
)
def test_one_is_transient_for_every_layer(error, transient):
    assert is_transient(error) is transient


def test_the_http_client_and_the_executor_take_the_one_policy():
    policy = RetryPolicy(max_attempts=2, initial_backoff_s=0.1, jitter=0.0)
    assert EagerExecutor(lambda t, a: None, retry=policy).retry is policy
    assert OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", retry=policy)._retry is policy
    default = OpenAIBackend.DEFAULT_RETRY
    assert isinstance(default, RetryPolicy)
    assert (default.max_attempts, default.initial_backoff_s, default.max_backoff_s) == (3, 0.5, 8)
    assert default.jitter == 1.0  # full jitter, as the client always had


def test_a_server_requested_wait_replaces_the_backoff_and_is_capped():
    policy = RetryPolicy(initial_backoff_s=1.0, jitter=1.0, max_retry_after_s=5)
    assert policy.delay(1, random.Random(1), retry_after=2.5) == 2.5  # never jittered
    assert policy.delay(1, retry_after=100.0) == 5
    assert 0.0 <= policy.delay(1, random.Random(1)) <= 1.0


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("plait.backends", "RetryPolicy"),
        ("plait.backends.openai", "RetryPolicy"),
        ("plait.graphs", "RetryPolicy"),
        ("plait.graphs.dag", "RetryPolicy"),
        ("plait.graphs.dag", "is_transient"),
        ("plait.backends.routing", "is_transient"),
    ],
)
def test_the_old_names_warn_and_lead_to_the_one_home(module, name):
    package = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{module}.{name} is deprecated; use plait.retry"):
        old = getattr(package, name)
    assert name not in package.__all__
    if name == "is_transient":
        assert old is is_transient
    elif module.startswith("plait.graphs"):
        assert old is RetryPolicy
    else:
        # The client's old constructor, old field names included, builds the one type.
        built = old(max_attempts=2, base_delay=0.25, max_delay=1.0, max_retry_after=7)
        assert built == RetryPolicy(
            max_attempts=2,
            initial_backoff_s=0.25,
            max_backoff_s=1.0,
            max_retry_after_s=7,
            jitter=1.0,
        )
        assert old(1).max_attempts == 1


def test_delivery_fields_change_no_cache_key_and_are_not_sent():
    plain = ChatRequest.from_prompt("hi", temperature=0)
    routed = plain.model_copy(update={"retry_connect": False, "priority": 7})
    identity = {"model": "m"}
    assert request_key(routed, identity) == request_key(plain, identity)
    other = ChatRequest.from_prompt("hello", temperature=0)
    assert request_key(other, identity) != request_key(plain, identity)
    options = {"model": "m", "stream": False, "schema_mode": "json_schema", "stream_usage": False}
    body = chat_body(routed, extra={}, **options)
    assert "retry_connect" not in body and "priority" not in body
    assert body == chat_body(plain, extra={}, **options)
