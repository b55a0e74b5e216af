"""OpenAI Agents SDK (``openai-agents``): a tracing processor that records the SDK's spans as actions.

>>> from agents import set_trace_processors
>>> set_trace_processors([AuditTracingProcessor(audit)])  # replaces OpenAI's exporter; add_trace_processor keeps it

Each finished span becomes an action with the span tree as the causal tree (``trace_id`` is the SDK's
trace id, ``action_id`` ``<trace>-<span>``): agent spans are ``invoke_agent`` (named by the agent),
generation and response spans are ``chat`` (model and usage tokens), function spans are ``execute_tool``
(arguments and result as digests), and handoff, guardrail, custom, task and turn spans are ``other``
named by what they are, so no child is left without its parent. Task and turn spans carry the run's
summed usage; only model calls carry tokens, so totals are not counted twice.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from agents.tracing import Span, Trace, TracingProcessor

from agentaudit.producers._genai import SpanRecord, record_span
from agentaudit.producers.client import AuditClient
from agentaudit.producers.integrations._common import MAX_OPEN, hook_failed, id_int, iso_ns, now_ns, plain, text

__all__ = ["AuditTracingProcessor"]


def _usage(usage: Any) -> dict[str, Any]:
    if not isinstance(usage, Mapping):
        usage = plain(usage) if usage is not None else {}
        if not isinstance(usage, Mapping):
            return {}
    tokens = {"gen_ai.usage.input_tokens": usage.get("input_tokens", usage.get("prompt_tokens")),
              "gen_ai.usage.output_tokens": usage.get("output_tokens", usage.get("completion_tokens"))}
    return {k: v for k, v in tokens.items() if v is not None}


def span_attributes(data: Any) -> tuple[str, dict[str, Any]]:
    """The span's name and its GenAI attributes, from the SDK's span data (by its ``type``)."""
    kind = getattr(data, "type", "custom")
    if kind == "agent":
        return f"invoke_agent {data.name}", {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": data.name,
            "openai_agents.tools": ",".join(data.tools or ()), "openai_agents.handoffs": ",".join(data.handoffs or ())}
    if kind == "generation":
        return f"chat {data.model}", {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": data.model, **_usage(data.usage),
            "gen_ai.input.messages": plain(data.input), "gen_ai.output.messages": plain(data.output)}
    if kind == "response":
        response = data.response
        return "chat", {
            "gen_ai.operation.name": "chat", "gen_ai.response.model": getattr(response, "model", None),
            "gen_ai.response.id": getattr(response, "id", None),
            **_usage(data.usage or getattr(response, "usage", None)),
            "gen_ai.input.messages": plain(data.input), "gen_ai.output.messages": plain(getattr(response, "output", None))}
    if kind == "function":
        return f"execute_tool {data.name}", {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": data.name,
            "gen_ai.tool.call.arguments": plain(data.input), "gen_ai.tool.call.result": plain(data.output)}
    if kind == "handoff":
        return f"handoff {data.from_agent} -> {data.to_agent}", {
            "openai_agents.from_agent": data.from_agent, "openai_agents.to_agent": data.to_agent}
    if kind == "guardrail":
        return f"guardrail {data.name}", {"openai_agents.triggered": data.triggered}
    if kind == "turn":
        return f"turn {data.turn}", {"gen_ai.agent.name": data.agent_name}
    name = getattr(data, "name", None)
    return f"{kind} {name}" if name else str(kind), {}


class AuditTracingProcessor(TracingProcessor):
    """Records the OpenAI Agents SDK's spans as agentaudit actions as they end.

    :param client: where the events go; left open by :meth:`shutdown` (it belongs to the application).
    """

    def __init__(self, client: AuditClient) -> None:
        self.client = client
        # span id -> (depth, agent) of spans started and not yet ended; trace id -> workflow name
        self._open: dict[str, tuple[int, str | None]] = {}
        self._workflows: dict[str, str] = {}
        self._lock = threading.Lock()

    def on_trace_start(self, trace: Trace) -> None:
        try:
            with self._lock:
                if len(self._workflows) >= MAX_OPEN:
                    self._workflows.pop(next(iter(self._workflows)))
                self._workflows[trace.trace_id] = text(trace.name, 256)
        except Exception as exc:  # noqa: BLE001 - a tracing hook must never break the agent
            hook_failed(self.client, "openai_agents_trace", exc)

    def on_trace_end(self, trace: Trace) -> None:
        try:
            with self._lock:
                self._workflows.pop(trace.trace_id, None)
        except Exception as exc:  # noqa: BLE001 - a tracing hook must never break the agent; recorded
            hook_failed(self.client, "openai_agents_trace", exc)

    def on_span_start(self, span: Span[Any]) -> None:
        try:
            data = span.span_data
            with self._lock:
                above = self._open.get(span.parent_id) if span.parent_id else None
                depth = 0 if not span.parent_id else (above[0] + 1 if above else 1)
                agent = data.name if getattr(data, "type", None) == "agent" else (above[1] if above else None)
                if len(self._open) >= MAX_OPEN:
                    self._open.pop(next(iter(self._open)))
                self._open[span.span_id] = (depth, agent)
        except Exception as exc:  # noqa: BLE001 - a tracing hook must never break the agent; recorded
            hook_failed(self.client, "openai_agents_span", exc)

    def on_span_end(self, span: Span[Any]) -> None:
        try:
            self._ended(span)
        except Exception as exc:  # noqa: BLE001 - a tracing hook must never break the agent; recorded
            hook_failed(self.client, "openai_agents_span", exc)

    def _ended(self, span: Span[Any]) -> None:
        with self._lock:
            known = self._open.pop(span.span_id, None)
            workflow = self._workflows.get(span.trace_id)
        try:
            name, attributes = span_attributes(span.span_data)
        except Exception as exc:  # noqa: BLE001 - odd span data: keep the span in the tree, by its type
            hook_failed(self.client, "openai_agents_span_data", exc)
            name, attributes = text(getattr(span.span_data, "type", "span"), 64), {}
        attributes = {k: v for k, v in attributes.items() if v is not None and v != ""}
        if workflow:
            attributes["openai_agents.workflow"] = workflow
        error = span.error
        end_ns = iso_ns(span.ended_at, now_ns())
        record = SpanRecord(
            trace_id=id_int(span.trace_id, "trace_"), span_id=id_int(span.span_id, "span_"),
            parent_span_id=id_int(span.parent_id, "span_") if span.parent_id else None, name=name,
            attributes=attributes, start_ns=iso_ns(span.started_at, end_ns), end_ns=end_ns, error=error is not None,
            status_message=text(error.get("message") if isinstance(error, Mapping) else error) if error else None,
            depth=known[0] if known else None, inherited_agent=known[1] if known else None)
        record_span(self.client, record, include_all=True)

    def shutdown(self) -> None:
        """Leaves the client open: it belongs to the application."""

    def force_flush(self) -> None:
        self.client.flush()
