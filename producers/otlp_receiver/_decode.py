"""An OTLP/HTTP trace request body as :class:`SpanRecord` s: gzip, protobuf or JSON, each with a bound.

Protobuf is read with opentelemetry-proto's generated ``ExportTraceServiceRequest`` and turned into
protobuf's JSON mapping, so both encodings go through the one OTLP JSON span reader of the importer
(:mod:`agentaudit.producers.importers.otlp_json`): a span posted live and a span imported from a file
become the same action.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentaudit.producers._genai import SpanRecord
from agentaudit.producers.importers.exceptions import ImportInputError
from agentaudit.producers.importers.otlp_json import _attributes, _place, _span
from agentaudit.producers.otlp_receiver.exceptions import OtlpPayloadError

__all__ = ["JSON", "PROTOBUF", "DecodedRequest", "decode_request", "media_type", "unzip"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@dataclass(slots=True)
class DecodedRequest:
    """The readable spans of one request, placed in their trees, and what could not be read."""

    spans: list[SpanRecord] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def media_type(content_type: str | None) -> str:
    """``application/json`` of ``application/json; charset=utf-8``; raises 415 for anything but OTLP's two."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in (PROTOBUF, JSON):
        raise OtlpPayloadError(415, f"unsupported Content-Type {content_type!r}: send {PROTOBUF} or {JSON}")
    return kind


def unzip(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body without its ``Content-Encoding`` (``gzip`` or none), at most ``limit`` bytes inflated."""
    coding = (encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding != "gzip":
        raise OtlpPayloadError(415, f"unsupported Content-Encoding {encoding!r}: send gzip or none")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpPayloadError(400, f"the gzip body cannot be inflated: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise OtlpPayloadError(413, f"the inflated body is over {limit} bytes; send smaller batches")
    if not inflater.eof:
        raise OtlpPayloadError(400, "the gzip body is truncated")
    return out


def _parse(body: bytes, kind: str) -> Any:
    if kind == PROTOBUF:
        try:
            message = ExportTraceServiceRequest.FromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise OtlpPayloadError(400, f"not an ExportTraceServiceRequest in protobuf: {exc}") from None
        return MessageToDict(message)
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: hostile nesting
        raise OtlpPayloadError(400, f"not JSON: {str(exc)[:200]}") from None


def _bad(where: str, reason: str) -> ImportInputError:
    return ImportInputError("request", 0, where, reason)


def decode_request(body: bytes, kind: str, *, default_agent: str) -> DecodedRequest:
    """The spans of an ``ExportTraceServiceRequest`` body; a span that cannot be read is counted, not raised.
    Spans that name no agent and have none above them get their resource's ``service.name``."""
    request = _parse(body, kind)
    if not isinstance(request, dict) or not isinstance(request.get("resourceSpans", []), list):
        raise OtlpPayloadError(400, "expected an ExportTraceServiceRequest object with a resourceSpans list")
    out = DecodedRequest()
    service: dict[int, str] = {}  # id(span) -> its resource's service.name

    def reject(where: str, reason: str, count: int = 1) -> None:
        out.rejected += count
        if len(out.errors) < 5:
            out.errors.append(f"{where}: {reason}")

    for r, resource in enumerate(request.get("resourceSpans") or []):
        where = f"resourceSpans[{r}]"
        if not isinstance(resource, dict):
            reject(where, "expected an object")
            continue
        try:
            raw = resource.get("resource") or {}
            attrs = _attributes(raw.get("attributes") if isinstance(raw, dict) else None, f"{where}.resource", _bad)
        except ImportInputError as exc:
            attrs = {}
            reject(exc.field, exc.reason, 0)
        name = attrs.get("service.name")
        agent = name if isinstance(name, str) and name and not name.startswith("unknown_service") else default_agent
        scopes = resource.get("scopeSpans")
        if not isinstance(scopes, list):
            reject(f"{where}.scopeSpans", "expected a list")
            continue
        for s, scope in enumerate(scopes):
            items = scope.get("spans") if isinstance(scope, dict) else None
            if not isinstance(items, list):
                reject(f"{where}.scopeSpans[{s}].spans", "expected a list")
                continue
            for i, item in enumerate(items):
                try:
                    span = _span(item, f"{where}.scopeSpans[{s}].spans[{i}]", _bad)
                except ImportInputError as exc:
                    reject(exc.field, exc.reason)
                    continue
                service[id(span)] = agent
                out.spans.append(span)
    _place(out.spans)
    for span in out.spans:
        if span.inherited_agent is None:
            span.inherited_agent = service[id(span)]
    return out
