"""The OpenTelemetry side of tracing: configuring a tracer, and the calls made on its spans.

Nothing of OpenTelemetry is imported until :func:`configure` runs (or a span
exists while it is configured): tracing to JSONL files works without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.errors import ConfigError

__all__ = ["EXPORT", "configure", "disable", "end", "fail", "start"]


class _Export:
    """Where spans go besides JSONL files: read by every span, so one object, set here."""

    __slots__ = ("provider", "redact", "tracer")

    def __init__(self) -> None:
        self.tracer: Any = None  # an opentelemetry Tracer once configure() ran
        self.provider: Any = None
        self.redact = False


EXPORT = _Export()


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
    try:
        from opentelemetry import trace as otel_trace
    except ImportError as e:
        raise ConfigError(
            "tracing to OpenTelemetry needs the opentelemetry packages: pip install 'plait[otel]'"
        ) from e
    if tracer_provider is None:
        tracer_provider = _otlp_provider(otlp_endpoint, service_name)
    from plait._version import __version__

    EXPORT.provider = tracer_provider
    EXPORT.tracer = otel_trace.get_tracer("plait", __version__, tracer_provider=tracer_provider)
    EXPORT.redact = redact


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
    provider = EXPORT.provider
    EXPORT.tracer, EXPORT.provider, EXPORT.redact = None, None, False
    flush = getattr(provider, "force_flush", None)
    if flush is not None:
        flush()


def start(name: str, parent: Any, attributes: Mapping[str, Any], start_s: float) -> Any:
    """An OpenTelemetry span under ``parent`` (an OTel span or ``None``), or ``None``."""
    if EXPORT.tracer is None:
        return None
    from opentelemetry import trace as otel_trace

    context = otel_trace.set_span_in_context(parent) if parent is not None else None
    return EXPORT.tracer.start_span(
        name, context=context, attributes=attributes, start_time=int(start_s * 1e9)
    )


def fail(otel_span: Any, message: str) -> None:
    """Mark an OpenTelemetry span failed with ``message``."""
    from opentelemetry.trace import Status, StatusCode

    otel_span.set_status(Status(StatusCode.ERROR, message))


def end(otel_span: Any, end_s: float) -> None:
    """End an OpenTelemetry span at ``end_s`` (Unix seconds)."""
    otel_span.end(end_time=int(end_s * 1e9))
