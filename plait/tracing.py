"""Tracing: spans for runs, plans, tasks, agents, model calls and tool calls.

Off by default, and then nearly free: :func:`span` checks two module-level
values and returns a shared no-op. Two kinds of sink turn it on:

- **OpenTelemetry** (:func:`configure`): spans go to an OTel tracer provider —
  yours, or one exporting over OTLP — with attributes from the GenAI semantic
  conventions (``gen_ai.operation.name``, ``gen_ai.request.model``,
  ``gen_ai.usage.input_tokens`` ...) plus ``plait.*`` ones (cached tokens,
  cost, backend, router and guard decisions). Needs ``pip install plait[otel]``;
  nothing of OpenTelemetry is imported until then.
- **JSONL files** (:func:`record_to`, :func:`record_run`): every finished span
  becomes one JSON line, e.g. ``.plait/runs/<run_id>/trace.jsonl``; works
  without OpenTelemetry and feeds :mod:`plait.cli.report`.

Spans nest through a context variable: a tool call's span is the child of the
agent step that made it, which is the child of the task that ran the agent.
With ``redact=True`` prompts, answers and tool arguments/results are replaced
by ``"[redacted]"`` everywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

from plait.errors import ConfigError

__all__ = [
    "JsonlSink",
    "Span",
    "SpanCollector",
    "add_event",
    "collect_under",
    "configure",
    "content",
    "current_span",
    "disable",
    "enabled",
    "read_trace",
    "record_run",
    "record_to",
    "remote_parent",
    "replay",
    "span",
    "start_span",
    "use_span",
]

REDACTED = "[redacted]"
_MAX_CONTENT = 4000

# Module-level switches: the whole cost of tracing when it is off is reading these.
_tracer: Any = None  # an opentelemetry Tracer once configure() ran
_provider: Any = None
_redact = False
_sinks: ContextVar[tuple[_Sink, ...]] = ContextVar("plait_trace_sinks", default=())
_current: ContextVar[Span | None] = ContextVar("plait_current_span", default=None)
# The redaction of the innermost recorded run, applied to what spans send to OpenTelemetry.
_scrubber: ContextVar[Callable[[Any], Any] | None] = ContextVar(
    "plait_trace_scrubber", default=None
)


class Span:
    """One traced operation; set attributes while it runs, it ends once.

    Attributes:
        name: span name (``plait.task``, ``chat smollm2``, ``execute_tool add`` ...).
        span_id: 16 hex digits, unique per span.
        trace_id: 32 hex digits, shared by a span tree.
        parent_id: the parent's ``span_id`` (``None`` for a root).
        start: Unix time it started.
        end_time: Unix time it ended (``None`` while running).
        attributes: key -> str, bool, int, float or a list of these.
        events: point-in-time events (router decisions, guard rejections).
        status: ``ok`` or ``error``.
    """

    __slots__ = (
        "name",
        "span_id",
        "trace_id",
        "parent_id",
        "start",
        "end_time",
        "attributes",
        "events",
        "status",
        "error",
        "_otel",
        "_sinks",
        "_scrub",
    )
    name: str
    span_id: str
    trace_id: str
    parent_id: str | None
    start: float
    end_time: float | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    status: str
    error: str | None
    _otel: Any
    _sinks: tuple[_Sink, ...]
    _scrub: Callable[[Any], Any] | None

    def __init__(
        self, name: str, parent: Span | None, attributes: Mapping[str, Any] | None
    ) -> None:
        self.name = name
        self.span_id = os.urandom(8).hex()
        self.trace_id = parent.trace_id if parent is not None else os.urandom(16).hex()
        self.parent_id = parent.span_id if parent is not None else None
        self.start = time.time()
        self.end_time = None
        self.attributes = {}
        self.events = []
        self.status = "ok"
        self.error = None
        # A child keeps writing to its root's files even if it ends in another context.
        self._sinks = parent._sinks if parent is not None else _sinks.get()
        # The JSONL sinks redact their own records; what goes to OpenTelemetry
        # leaves the process, so the run's redaction follows the span tree too.
        self._scrub = parent._scrub if parent is not None else _scrubber.get()
        self._otel = None
        if attributes:
            self.set_attributes(attributes)
        if _tracer is not None:
            from opentelemetry import trace as otel_trace

            context = None
            if parent is not None and parent._otel is not None:
                context = otel_trace.set_span_in_context(parent._otel)
            self._otel = _tracer.start_span(
                name,
                context=context,
                attributes=self._exported(self.attributes),
                start_time=int(self.start * 1e9),
            )

    def set(self, key: str, value: Any) -> None:
        """Set one attribute (``None`` values are dropped)."""
        if value is None or self.end_time is not None:
            return
        value = _attribute_value(value)
        self.attributes[key] = value
        if self._otel is not None:
            self._otel.set_attribute(key, self._exported(value))

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set several attributes."""
        for key, value in attributes.items():
            self.set(key, value)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        """Record something that happened during the span."""
        clean = {k: _attribute_value(v) for k, v in (attributes or {}).items() if v is not None}
        self.events.append({"name": name, "at": time.time(), "attributes": clean})
        if self._otel is not None:
            self._otel.add_event(self._exported(name), attributes=self._exported(clean))

    def fail(self, error: BaseException | str) -> None:
        """Mark the span as failed."""
        self.status = "error"
        if isinstance(error, BaseException):
            self.error = f"{type(error).__name__}: {error}"
            self.set("error.type", type(error).__name__)
        else:
            self.error = error
        if self._otel is not None:
            from opentelemetry.trace import Status, StatusCode

            self._otel.set_status(Status(StatusCode.ERROR, self._exported(self.error)))

    def end(self) -> None:
        """End the span (again is a no-op) and hand it to the sinks."""
        if self.end_time is not None:
            return
        self.end_time = time.time()
        if self._otel is not None:
            self._otel.end(end_time=int(self.end_time * 1e9))
        if self._sinks:
            record = self.to_record()
            for sink in self._sinks:
                sink.write(record)

    def _exported(self, value: Any) -> Any:
        """``value`` as it may be sent to OpenTelemetry (the run's secrets hidden)."""
        return value if self._scrub is None else self._scrub(value)

    def to_record(self) -> dict[str, Any]:
        """The span as one JSON-ready dict (a line of ``trace.jsonl``)."""
        return {
            "type": "span",
            "name": self.name,
            "span_id": self.span_id,
            "trace_id": self.trace_id,
            "parent_id": self.parent_id,
            "start": self.start,
            "end": self.end_time,
            "status": self.status,
            "error": self.error,
            "attributes": self.attributes,
            "events": self.events,
        }


class _NoopSpan:
    """What the span helpers hand out while tracing is off: accepts everything."""

    __slots__ = ()

    def set(self, key: str, value: Any) -> None:
        return None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        return None

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        return None

    def fail(self, error: BaseException | str) -> None:
        return None

    def end(self) -> None:
        return None


class _NoopContext:
    __slots__ = ()

    def __enter__(self) -> _NoopSpan:
        return _NOOP_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


_NOOP_SPAN = _NoopSpan()
_NOOP_CONTEXT = _NoopContext()
_UNSET: Any = object()


def enabled() -> bool:
    """Whether any sink (OpenTelemetry or a JSONL file) receives spans here."""
    return _tracer is not None or bool(_sinks.get())


def current_span() -> Span | None:
    """The innermost open span of this context, if tracing is on."""
    return _current.get()


def start_span(
    name: str, attributes: Mapping[str, Any] | None = None, *, parent: Span | None = _UNSET
) -> Span | None:
    """Start a span to end explicitly with :meth:`Span.end`; ``None`` when tracing is off.

    The span does not become the current one; wrap work in :func:`use_span` for that.
    ``parent`` defaults to the current span.
    """
    if _tracer is None and not _sinks.get():
        return None
    return Span(name, _current.get() if parent is _UNSET else parent, attributes)


@contextlib.contextmanager
def use_span(span: Span | None) -> Iterator[None]:
    """Make ``span`` the current span inside the block (``None``: do nothing)."""
    if span is None:
        yield
        return
    previous = _current.get()
    _current.set(span)
    try:
        yield
    finally:
        # Set back rather than reset a token: async generators may close in
        # another context, where a token from this one would be refused.
        _current.set(previous)


def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, parent: Span | None = _UNSET
) -> Any:
    """A context manager around one operation, yielding its :class:`Span`.

    An exception leaving the block marks the span failed and propagates. While
    tracing is off it yields a no-op span, so callers never need to check.
    """
    if _tracer is None and not _sinks.get():
        return _NOOP_CONTEXT
    return _active(Span(name, _current.get() if parent is _UNSET else parent, attributes))


@contextlib.contextmanager
def _active(s: Span) -> Iterator[Span]:
    previous = _current.get()
    _current.set(s)
    try:
        yield s
    except BaseException as e:
        s.fail(e)
        raise
    finally:
        _current.set(previous)
        s.end()


def add_event(name: str, attributes: Mapping[str, Any] | None = None) -> None:
    """Add an event to the current span (nothing when tracing is off)."""
    current = _current.get()
    if current is not None:
        current.add_event(name, attributes)


def content(text: Any) -> str | None:
    """Prompt/answer/tool text as it may be recorded: redacted, or capped in length."""
    if text is None:
        return None
    if _redact:
        return REDACTED
    text = text if isinstance(text, str) else json.dumps(text, default=str)
    return text if len(text) <= _MAX_CONTENT else text[:_MAX_CONTENT] + "..."


def configure(
    *,
    tracer_provider: Any = None,
    otlp_endpoint: str | None = None,
    service_name: str = "plait",
    redact: bool = False,
) -> None:
    """Send spans to OpenTelemetry.

    Args:
        tracer_provider: an OpenTelemetry ``TracerProvider`` to use as it is (tests
            pass one with an in-memory exporter).
        otlp_endpoint: without a provider, export over OTLP/gRPC to this address
            (``None``: the ``OTEL_EXPORTER_OTLP_ENDPOINT`` variable or the
            exporter's default, ``localhost:4317``).
        service_name: ``service.name`` of a provider created here.
        redact: replace prompts, answers and tool arguments/results with ``[redacted]``
            (in JSONL files too).

    Raises:
        ConfigError: OpenTelemetry is not installed (``pip install plait[otel]``).
    """
    global _tracer, _provider, _redact
    try:
        from opentelemetry import trace as otel_trace
    except ImportError as e:
        raise ConfigError(
            "tracing to OpenTelemetry needs the opentelemetry packages: pip install 'plait[otel]'"
        ) from e
    if tracer_provider is None:
        tracer_provider = _otlp_provider(otlp_endpoint, service_name)
    from plait._version import __version__

    _provider = tracer_provider
    _tracer = otel_trace.get_tracer("plait", __version__, tracer_provider=tracer_provider)
    _redact = redact


def _otlp_provider(endpoint: str | None, service_name: str) -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as e:
        raise ConfigError(
            "exporting traces over OTLP needs opentelemetry-sdk and "
            "opentelemetry-exporter-otlp-proto-grpc: pip install 'plait[otel]'"
        ) from e
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def disable() -> None:
    """Stop sending spans to OpenTelemetry (flushing a provider created here)."""
    global _tracer, _provider, _redact
    provider, _tracer, _provider, _redact = _provider, None, None, False
    flush = getattr(provider, "force_flush", None)
    if flush is not None:
        flush()


class _Sink(Protocol):
    """Where finished span records go."""

    def write(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class SpanCollector:
    """A sink that keeps finished span records in memory, to send them elsewhere."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def write(self, record: Mapping[str, Any]) -> None:
        with self._lock:
            self.records.append(dict(record))

    def close(self) -> None:
        return None


def remote_parent() -> dict[str, str] | None:
    """The current span's ids, for work that continues in another process.

    ``None`` when no file records this context's spans (nothing to send back).
    """
    current = _current.get()
    if current is None or not current._sinks:
        return None
    return {"trace_id": current.trace_id, "span_id": current.span_id}


@contextlib.contextmanager
def collect_under(parent: Mapping[str, str]) -> Iterator[SpanCollector]:
    """In another process (a Ray worker): spans started inside the block become
    children of ``parent`` (from :func:`remote_parent`) and are kept in the
    collector, for the caller to send back and :func:`replay` into the run's trace.
    """
    collector = SpanCollector()
    stand_in = Span.__new__(Span)  # the parent living in the other process
    stand_in.name = "remote parent"
    stand_in.span_id = parent["span_id"]
    stand_in.trace_id = parent["trace_id"]
    stand_in.parent_id = None
    stand_in.start = time.time()
    stand_in.end_time = None
    stand_in.attributes = {}
    stand_in.events = []
    stand_in.status = "ok"
    stand_in.error = None
    stand_in._otel = None
    stand_in._sinks = (collector,)
    stand_in._scrub = None
    token = _sinks.set((collector,))
    previous = _current.get()
    _current.set(stand_in)
    try:
        yield collector
    finally:
        _current.set(previous)
        _sinks.reset(token)


def replay(records: Iterable[Mapping[str, Any]]) -> None:
    """Write span records made in another process to where the current span goes."""
    current = _current.get()
    sinks = current._sinks if current is not None else _sinks.get()
    for record in records:
        for sink in sinks:
            sink.write(record)


class JsonlSink:
    """Appends finished spans to a JSON Lines file, one line each, flushed at once.

    Thread-safe; the file is opened lazily on the first span and kept open.

    Args:
        path: the file.
        redact: applied to each record before it is written (a run's
            :meth:`plait._secrets.Redactor.data`, hiding its secrets).
    """

    def __init__(self, path: str | Path, redact: Callable[[Any], Any] | None = None) -> None:
        self.path = Path(path)
        self.redact = redact
        self._file: Any = None
        self._lock = threading.Lock()

    def write(self, record: Mapping[str, Any]) -> None:
        if self.redact is not None:
            record = self.redact(record)
        line = json.dumps(record, default=str, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


@contextlib.contextmanager
def record_to(path: str | Path, redact: Callable[[Any], Any] | None = None) -> Iterator[JsonlSink]:
    """Inside the block, spans started in this context are also written to ``path``.

    ``redact`` is applied to each record written there, and to what spans
    started in the block send to OpenTelemetry.
    """
    sink = JsonlSink(path, redact)
    token = _sinks.set((*_sinks.get(), sink))
    scrub_token = _scrubber.set(redact) if redact is not None else None
    try:
        yield sink
    finally:
        if scrub_token is not None:
            _scrubber.reset(scrub_token)
        _sinks.reset(token)
        sink.close()


@contextlib.contextmanager
def record_run(
    run_dir: str | Path,
    run_id: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    redact: Callable[[Any], Any] | None = None,
) -> Iterator[Span]:
    """Trace one run: a ``plait.run`` root span, written to ``run_dir/trace.jsonl``.

    Everything started inside the block (plans, tasks, agents, model and tool
    calls) becomes part of the run's trace; ``redact`` is applied to each span
    record before it is written (the run's secrets hidden).
    """
    with record_to(Path(run_dir) / "trace.jsonl", redact):
        with span("plait.run", {"plait.run_id": run_id, **(attributes or {})}) as s:
            yield s


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """The span records of a ``trace.jsonl`` file, in the order they ended.

    A torn last line (the process died while writing it) is ignored.

    Raises:
        ConfigError: the file does not exist.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as e:
        raise ConfigError(f"no trace at {path}: was the run recorded?") from e
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _attribute_value(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [v if isinstance(v, str | bool | int | float) else str(v) for v in items]
    return str(value)
