"""Where finished spans go: JSONL files per run, collectors, spans from other processes."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from plait.errors import ConfigError

from ._spans import Recording, Span, current_span, recording, span, use_span

__all__ = [
    "JsonlSink",
    "SpanCollector",
    "collect_under",
    "read_trace",
    "record_run",
    "record_to",
    "remote_parent",
    "replay",
]


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
    current = current_span()
    if current is None or not current.sinks:
        return None
    return {"trace_id": current.trace_id, "span_id": current.span_id}


@contextlib.contextmanager
def collect_under(parent: Mapping[str, str]) -> Iterator[SpanCollector]:
    """In another process (a Ray worker): spans started inside the block become
    children of ``parent`` (from :func:`remote_parent`) and are kept in the
    collector, for the caller to send back and :func:`replay` into the run's trace.
    """
    collector = SpanCollector()
    outer = recording.get()
    # The stand-in's children export unredacted, as the worker's own spans did.
    stand_in = Span.remote(parent["span_id"], parent["trace_id"], Recording((collector,)))
    token = recording.set(Recording((collector,), outer.scrub if outer is not None else None))
    try:
        with use_span(stand_in):
            yield collector
    finally:
        recording.reset(token)


def replay(records: Iterable[Mapping[str, Any]]) -> None:
    """Write span records made in another process to where the current span goes."""
    current = current_span()
    if current is not None:
        sinks = current.sinks
    else:
        outer = recording.get()
        sinks = outer.sinks if outer is not None else ()
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
    outer = recording.get()
    sinks = (*outer.sinks, sink) if outer is not None else (sink,)
    scrub = redact if redact is not None else (outer.scrub if outer is not None else None)
    token = recording.set(Recording(sinks, scrub))
    try:
        yield sink
    finally:
        recording.reset(token)
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
