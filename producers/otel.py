"""OpenTelemetry adapter: GenAI spans from any instrumented agent framework become action events.

Add :class:`AuditSpanProcessor` to a ``TracerProvider`` and every span carrying
``gen_ai.operation.name`` (``invoke_agent``, ``create_agent``, ``chat``, ``text_completion``,
``embeddings``, ``execute_tool``, ...) is recorded as an action: a start and an end event with
status, latency, model, tokens and error. Ids come from OTel: ``trace_id`` is the OTel trace id
(32 hex), ``action_id`` is ``<trace id>-<span id>`` and the parent is the parent span, so the
causal tree is the span tree. The agent is ``gen_ai.agent.name`` (or ``gen_ai.agent.id``), else
the agent of the nearest agent span above, else the client's agent.

>>> provider = TracerProvider()
>>> provider.add_span_processor(AuditSpanProcessor(audit))

:class:`AuditSpanExporter` does the same behind a ``BatchSpanProcessor``; it sees finished spans
only (children before parents), so depth and inherited agents are exact only with the processor.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from agentaudit.logs import get_logger
from agentaudit.producers._capture import type_name
from agentaudit.producers._genai import GENAI_KINDS, SpanRecord, record_span, span_action_id, span_agent
from agentaudit.producers.client import AuditClient

__all__ = ["GENAI_KINDS", "AuditSpanExporter", "AuditSpanProcessor", "span_action_id"]

_log = get_logger("agentaudit.producers")


class _Converter:
    """Turns finished GenAI spans into :meth:`AuditClient.record_action` calls."""

    def __init__(self, client: AuditClient, include_all: bool) -> None:
        self.client = client
        self.include_all = include_all
        # span id -> (depth, agent) of spans started and not yet ended
        self._open: dict[int, tuple[int, str | None]] = {}
        self._lock = threading.Lock()

    def started(self, span: Span) -> None:
        try:
            self._started(span)
        except Exception as exc:  # noqa: BLE001 - a span processor must never break the traced code
            _log.warning("sdk.otel_start_failed", error=type_name(exc))

    def ended(self, span: ReadableSpan) -> None:
        try:
            self._ended(span)
        except Exception as exc:  # noqa: BLE001 - a span processor must never break the traced code; recorded as a failed point
            self.client._point_failed("otel_span", exc)

    def _started(self, span: Span) -> None:
        ctx = span.get_span_context()
        parent = span.parent
        attrs = span.attributes or {}
        with self._lock:
            above = self._open.get(parent.span_id) if parent is not None else None
            depth = 0 if parent is None else (above[0] + 1 if above else 1)
            self._open[ctx.span_id] = (depth, span_agent(attrs) or (above[1] if above else None))

    def _ended(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        if ctx is None:
            return
        with self._lock:
            known = self._open.pop(ctx.span_id, None)
        parent = span.parent
        start_ns = span.start_time or 0
        record = SpanRecord(
            trace_id=ctx.trace_id, span_id=ctx.span_id, parent_span_id=parent.span_id if parent is not None else None,
            name=span.name, attributes=span.attributes or {}, start_ns=start_ns, end_ns=span.end_time or start_ns,
            error=span.status.status_code is StatusCode.ERROR, status_message=span.status.description,
            events=[(event.name, event.attributes or {}) for event in span.events],
            links=[(link.context.trace_id, link.context.span_id) for link in span.links or ()],
            depth=known[0] if known else None, inherited_agent=known[1] if known else None)
        record_span(self.client, record, include_all=self.include_all)


class AuditSpanProcessor(SpanProcessor):
    """Records GenAI spans as action events as they end (synchronously cheap: one enqueue per event).

    :param client: where the events go.
    :param include_all: also record spans without ``gen_ai.operation.name`` (as kind ``other``), default false.
    """

    def __init__(self, client: AuditClient, *, include_all: bool = False) -> None:
        self._converter = _Converter(client, include_all)
        self.client = client

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._converter.started(span)

    def on_end(self, span: ReadableSpan) -> None:
        self._converter.ended(span)

    def shutdown(self) -> None:
        """Leaves the client open: it belongs to the application."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.client.flush(timeout_millis / 1000)


class AuditSpanExporter(SpanExporter):
    """Records exported GenAI spans as action events (for use behind a ``BatchSpanProcessor``)."""

    def __init__(self, client: AuditClient, *, include_all: bool = False) -> None:
        self._converter = _Converter(client, include_all)
        self.client = client

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._converter.ended(span)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Leaves the client open: it belongs to the application."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.client.flush(timeout_millis / 1000)

