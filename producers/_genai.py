"""One mapping of a GenAI span (OpenTelemetry semantic conventions) to an action, for every way a span
arrives: live from a ``TracerProvider`` (:mod:`agentaudit.producers.otel`) or read back from an OTLP JSON
file (:mod:`agentaudit.producers.importers.otlp_json`). Both describe the span as a :class:`SpanRecord`
and call :func:`record_span`, so an imported trace becomes the same events as the live one."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentaudit.producers.client import AuditClient

__all__ = ["GENAI_KINDS", "INPUT_ATTRIBUTES", "OUTPUT_ATTRIBUTES", "SpanRecord", "record_span", "span_action_id", "span_agent"]

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

#: Content attributes (prompts, completions, tool arguments and results): recorded as the action's input and
#: output, that is as keyed digests (bodies only with ``capture_bodies``), never as attributes in clear.
INPUT_ATTRIBUTES = ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.prompt", "gen_ai.tool.call.arguments")
OUTPUT_ATTRIBUTES = ("gen_ai.output.messages", "gen_ai.completion", "gen_ai.tool.call.result")


def _content(attrs: dict[str, Any], names: tuple[str, ...], prefix: str) -> Any:
    """Pop the content attributes ``names`` (and indexed ``gen_ai.prompt.0.content`` forms): one value alone,
    several as a dict; JSON text (tool arguments, messages) as the value it encodes, as the SDK digests it."""
    found = {k: attrs.pop(k) for k in [k for k in attrs if k in names or k.startswith(prefix)]}
    for key, value in found.items():
        if isinstance(value, str) and value[:1] in ("{", "["):
            try:
                found[key] = json.loads(value)
            except ValueError:
                pass
    if not found:
        return None
    return next(iter(found.values())) if len(found) == 1 else found


def span_action_id(trace_id: int, span_id: int) -> str:
    """The action id of an OTel span: ``<trace id hex>-<span id hex>``."""
    return f"{trace_id:032x}-{span_id:016x}"


@dataclass(slots=True)
class SpanRecord:
    """What the mapping needs of one finished span, whatever it came from.

    :param depth: distance from the trace root (None: 1 below a parent, else 0).
    :param inherited_agent: the agent of the nearest agent span above, for spans that name none.
    :param events: ``(name, attributes)`` of the span's events (``exception`` ones give the error).
    :param links: ``(trace id, span id)`` of linked spans.
    """

    trace_id: int
    span_id: int
    parent_span_id: int | None
    name: str
    attributes: Mapping[str, Any]
    start_ns: int
    end_ns: int
    error: bool = False
    status_message: str | None = None
    events: Sequence[tuple[str, Mapping[str, Any]]] = field(default_factory=tuple)
    links: Sequence[tuple[int, int]] = field(default_factory=tuple)
    depth: int | None = None
    inherited_agent: str | None = None


def span_agent(attributes: Mapping[str, Any]) -> str | None:
    """The agent a span names itself (``gen_ai.agent.name``, else ``gen_ai.agent.id``)."""
    agent = attributes.get("gen_ai.agent.name") or attributes.get("gen_ai.agent.id")
    return str(agent) if agent else None


def record_span(client: AuditClient, span: SpanRecord, *, include_all: bool = False) -> bool:
    """Record ``span`` as an action (start and end events) through ``client``; False when it is not a
    GenAI span (no ``gen_ai.operation.name``) and ``include_all`` is off. Never raises for odd values:
    :meth:`AuditClient.record_action` leaves out what it cannot take and names it."""
    attrs = dict(span.attributes)
    operation = attrs.get("gen_ai.operation.name")
    if operation is None and not include_all:
        return False
    kind = GENAI_KINDS.get(str(operation), "other")
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    if kind == "execute_tool":
        name = attrs.get("gen_ai.tool.name") or span.name
    elif kind in ("chat", "text_completion", "embeddings"):
        name = model or span.name
    elif kind in ("invoke_agent", "create_agent"):
        name = span_agent(attrs) or span.name
    else:
        name = span.name
    agent = span_agent(attrs) or span.inherited_agent
    depth = span.depth if span.depth is not None else (1 if span.parent_span_id is not None else 0)
    status, error_type, error_message = "ok", None, None
    if span.error:
        status = "error"
        error_message = span.status_message
        error_type = attrs.get("error.type")
        for event_name, event_attrs in span.events:
            if event_name == "exception":
                error_type = error_type or event_attrs.get("exception.type")
                error_message = error_message or event_attrs.get("exception.message")
        error_type = str(error_type or "error")
    content_in = _content(attrs, INPUT_ATTRIBUTES, "gen_ai.prompt.")
    content_out = _content(attrs, OUTPUT_ATTRIBUTES, "gen_ai.completion.")
    extra = {k: v for k, v in attrs.items() if k not in _MAPPED}
    attributes = {k: extra[k] for k in list(extra)[:_MAX_ATTRIBUTES]}
    attributes["otel.span_name"] = span.name
    if operation is not None and kind == "other":
        attributes["gen_ai.operation.name"] = str(operation)
    parent = span.parent_span_id
    client.record_action(
        kind, name, action_id=span_action_id(span.trace_id, span.span_id), trace_id=f"{span.trace_id:032x}",
        parent_action_id=span_action_id(span.trace_id, parent) if parent is not None else None,
        depth=depth, agent=agent, start_time_us=span.start_ns // 1000, end_time_us=span.end_ns // 1000,
        status=status, error_type=error_type, error_message=error_message, model=str(model) if model else None,
        # values the client cannot take are left out and named in agentaudit.uncaptured.* attributes
        input_tokens=attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens", 0)) or 0,
        output_tokens=attrs.get("gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens", 0)) or 0,
        cost_usd=attrs.get("gen_ai.usage.cost_usd", 0.0) or 0.0, attributes=attributes,
        links=[span_action_id(t, s) for t, s in span.links], input=content_in, output=content_out)
    return True
