"""Spans: the current span of a context, the helpers that open them, and the no-op when off.

Off, a span helper reads two values (the OpenTelemetry tracer and this
context's recording) and hands out a shared no-op. Two context variables carry
tracing through a run, because code in every layer, a tool author's included,
opens spans without being handed anything: the innermost open span (so a
child knows its parent) and the recording (the sinks this context's root spans
write to, and the redaction of what they export).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from . import _otel
from ._otel import EXPORT

__all__ = [
    "REDACTED",
    "Recording",
    "Sink",
    "Span",
    "add_event",
    "content",
    "current_span",
    "enabled",
    "recording",
    "span",
    "start_span",
    "use_span",
]

REDACTED = "[redacted]"
_MAX_CONTENT = 4000


class Sink(Protocol):
    """Where finished span records go."""

    def write(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Recording:
    """Where this context's spans are written, and how what they export is redacted.

    Attributes:
        sinks: every sink a root span started here writes to (nested
            ``record_to`` blocks add theirs).
        scrub: the redaction of the innermost recorded run, applied to what
            spans send to OpenTelemetry (``None``: nothing hidden).
    """

    sinks: tuple[Sink, ...]
    scrub: Callable[[Any], Any] | None = None


# Set by record_to / collect_under (never left empty: no recording is None).
recording: ContextVar[Recording | None] = ContextVar("plait_trace_recording", default=None)
_current: ContextVar[Span | None] = ContextVar("plait_current_span", default=None)


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
        "_recording",
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
    _recording: Recording | None

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
        # A child keeps writing to its root's files even if it ends in another
        # context; the JSONL sinks redact their own records, and what goes to
        # OpenTelemetry leaves the process, so the run's redaction follows too.
        self._recording = parent._recording if parent is not None else recording.get()
        self._otel = None
        if attributes:
            self.set_attributes(attributes)
        if EXPORT.tracer is not None:
            parent_otel = parent._otel if parent is not None else None
            exported = self._exported(self.attributes)
            self._otel = _otel.start(name, parent_otel, exported, self.start)

    @classmethod
    def remote(cls, span_id: str, trace_id: str, to: Recording) -> Span:
        """A stand-in for a parent living in another process (children record to ``to``)."""
        stand_in = cls.__new__(cls)
        stand_in.name = "remote parent"
        stand_in.span_id = span_id
        stand_in.trace_id = trace_id
        stand_in.parent_id = None
        stand_in.start = time.time()
        stand_in.end_time = None
        stand_in.attributes = {}
        stand_in.events = []
        stand_in.status = "ok"
        stand_in.error = None
        stand_in._otel = None
        stand_in._recording = to
        return stand_in

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """Where this span's record goes when it ends (its root's sinks)."""
        return self._recording.sinks if self._recording is not None else ()

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
            _otel.fail(self._otel, self._exported(self.error))

    def end(self) -> None:
        """End the span (again is a no-op) and hand it to the sinks."""
        if self.end_time is not None:
            return
        self.end_time = time.time()
        if self._otel is not None:
            _otel.end(self._otel, self.end_time)
        sinks = self.sinks
        if sinks:
            record = self.to_record()
            for sink in sinks:
                sink.write(record)

    def _exported(self, value: Any) -> Any:
        """``value`` as it may be sent to OpenTelemetry (the run's secrets hidden)."""
        scrub = self._recording.scrub if self._recording is not None else None
        return value if scrub is None else scrub(value)

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
    return EXPORT.tracer is not None or recording.get() is not None


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
    if EXPORT.tracer is None and recording.get() is None:
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
    if EXPORT.tracer is None and recording.get() is None:
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
    if EXPORT.redact:
        return REDACTED
    text = text if isinstance(text, str) else json.dumps(text, default=str)
    return text if len(text) <= _MAX_CONTENT else text[:_MAX_CONTENT] + "..."


def _attribute_value(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [v if isinstance(v, str | bool | int | float) else str(v) for v in items]
    return str(value)
