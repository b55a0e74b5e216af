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

import logging
import threading
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from agentaudit.producers._capture import type_name
from agentaudit.producers.client import AuditClient

__all__ = ["AuditSpanExporter", "AuditSpanProcessor", "GENAI_KINDS", "span_action_id"]

#: ``gen_ai.operation.name`` values and the action kind each becomes.
GENAI_KINDS: dict[str, str] = {
    "invoke_agent": "invoke_agent", "create_agent": "create_agent", "chat": "chat",
    "text_completion": "text_completion", "generate_content": "chat", "embeddings": "embeddings",
    "execute_tool": "execute_tool",
}

#: Span attributes the event carries as fields, not as attributes.
_MAPPED = frozenset(("gen_ai.operation.name", "gen_ai.agent.name", "gen_ai.agent.id", "gen_ai.tool.name",
                     "gen_ai.request.model", "gen_ai.response.model", "gen_ai.usage.input_tokens",
                     "gen_ai.usage.output_tokens", "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens",
                     "gen_ai.usage.cost_usd", "error.type"))
_MAX_ATTRIBUTES = 32
_log = logging.getLogger("agentaudit.producers")


def span_action_id(trace_id: int, span_id: int) -> str:
    """The action id of an OTel span: ``<trace id hex>-<span id hex>``."""
    return f"{trace_id:032x}-{span_id:016x}"


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
            _log.warning("sdk.otel_start_failed error=%s", type_name(exc))

    def ended(self, span: ReadableSpan) -> None:
        try:
            self._ended(span)
        except Exception as exc:  # noqa: BLE001
            self.client._point_failed("otel_span", exc)

    def _started(self, span: Span) -> None:
        ctx = span.get_span_context()
        parent = span.parent
        attrs = span.attributes or {}
        with self._lock:
            above = self._open.get(parent.span_id) if parent is not None else None
            depth = 0 if parent is None else (above[0] + 1 if above else 1)
            agent = attrs.get("gen_ai.agent.name") or attrs.get("gen_ai.agent.id") or (above[1] if above else None)
            self._open[ctx.span_id] = (depth, str(agent) if agent else None)

    def _ended(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        if ctx is None:
            return
        with self._lock:
            known = self._open.pop(ctx.span_id, None)
        attrs = dict(span.attributes or {})
        operation = attrs.get("gen_ai.operation.name")
        if operation is None and not self.include_all:
            return
        kind = GENAI_KINDS.get(str(operation), "other")
        model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
        if kind == "execute_tool":
            name = attrs.get("gen_ai.tool.name") or span.name
        elif kind in ("chat", "text_completion", "embeddings"):
            name = model or span.name
        elif kind in ("invoke_agent", "create_agent"):
            name = attrs.get("gen_ai.agent.name") or attrs.get("gen_ai.agent.id") or span.name
        else:
            name = span.name
        agent = attrs.get("gen_ai.agent.name") or attrs.get("gen_ai.agent.id") or (known[1] if known else None)
        parent = span.parent
        depth = known[0] if known else (1 if parent is not None else 0)
        status, error_type, error_message = "ok", None, None
        if span.status.status_code is StatusCode.ERROR:
            status = "error"
            error_message = span.status.description
            error_type = attrs.get("error.type")
            for event in span.events:
                if event.name == "exception":
                    ev = event.attributes or {}
                    error_type = error_type or ev.get("exception.type")
                    error_message = error_message or ev.get("exception.message")
            error_type = str(error_type or "error")
        extra = {k: v for k, v in attrs.items() if k not in _MAPPED}
        attributes = {k: extra[k] for k in list(extra)[:_MAX_ATTRIBUTES]}
        attributes["otel.span_name"] = span.name
        if operation is not None and kind == "other":
            attributes["gen_ai.operation.name"] = str(operation)
        trace_hex = f"{ctx.trace_id:032x}"
        start_us = (span.start_time or 0) // 1000
        end_us = (span.end_time or span.start_time or 0) // 1000
        links = [span_action_id(link.context.trace_id, link.context.span_id) for link in span.links or ()]
        self.client.record_action(
            kind, name, action_id=span_action_id(ctx.trace_id, ctx.span_id), trace_id=trace_hex,
            parent_action_id=span_action_id(parent.trace_id, parent.span_id) if parent is not None else None,
            depth=depth, agent=str(agent) if agent else None, start_time_us=start_us, end_time_us=end_us,
            status=status, error_type=error_type, error_message=error_message,
            model=str(model) if model else None,
            # values the client cannot take are left out and named in agentaudit.uncaptured.* attributes
            input_tokens=attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens", 0)) or 0,
            output_tokens=attrs.get("gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens", 0)) or 0,
            cost_usd=attrs.get("gen_ai.usage.cost_usd", 0.0) or 0.0, attributes=attributes, links=links)


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

