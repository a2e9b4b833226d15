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
The jobs live apart: spans (``_spans``), sinks and JSONL files (``_sinks``),
OpenTelemetry (``_otel``); every public name is imported from here.
With ``redact=True`` prompts, answers and tool arguments/results are replaced
by ``"[redacted]"`` everywhere.
"""

from ._otel import configure, disable
from ._sinks import (
    JsonlSink,
    SpanCollector,
    collect_under,
    read_trace,
    record_run,
    record_to,
    remote_parent,
    replay,
)
from ._spans import REDACTED as REDACTED  # the placeholder, readable here as before
from ._spans import (
    Span,
    add_event,
    content,
    current_span,
    enabled,
    span,
    start_span,
    use_span,
)

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
