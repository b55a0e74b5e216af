"""OpenTelemetry trace files in OTLP JSON as action events, through the same span mapping as the live
:class:`~agentaudit.producers.otel.AuditSpanProcessor` (:func:`~agentaudit.producers._genai.record_span`).

A file holds one ``ExportTraceServiceRequest`` in its JSON encoding (``resourceSpans`` / ``scopeSpans`` /
``spans``), or one per line as the OpenTelemetry Collector's file exporter writes them. Ids may be hex
(the OTLP JSON rule) or base64 (protobuf's generic JSON mapping); 64-bit numbers may be strings or
numbers; ``status.code`` a name (``STATUS_CODE_ERROR``) or a number. A span that cannot be read is
rejected with its file, line and field (``resourceSpans[0].scopeSpans[0].spans[2].startTimeUnixNano``);
the others are imported. Depth and inherited agents are computed over the whole file, so a child
exported before its parent still gets the depth the live processor gives it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, overload

from agentaudit.producers._genai import SpanRecord, record_span, span_agent
from agentaudit.producers.importers._common import ClientFactory, ImportReport, iter_json_lines
from agentaudit.producers.importers.exceptions import ImportInputError

__all__ = ["import_otlp_json", "read_spans"]

_ERROR_CODES = frozenset((2, "2", "STATUS_CODE_ERROR"))


@overload
def _id(value: Any, size: int, where: str, bad: Any, *, required: Literal[True] = True) -> int: ...
@overload
def _id(value: Any, size: int, where: str, bad: Any, *, required: bool) -> int | None: ...
def _id(value: Any, size: int, where: str, bad: Any, *, required: bool = True) -> int | None:
    """A trace (16 bytes) or span (8 bytes) id from hex or base64 text."""
    if value in (None, "") and not required:
        return None
    if not isinstance(value, str) or not value:
        raise bad(where, f"expected a {size}-byte id as hex or base64, got {json.dumps(value)[:80]}")
    raw: bytes | None = None
    if len(value) == 2 * size:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != size:
        raise bad(where, f"{value!r} is not a {size}-byte id ({2 * size} hex digits or base64)")
    number = int.from_bytes(raw, "big")
    if number == 0:
        if not required:
            return None
        raise bad(where, "an all-zero id is invalid")
    return number


def _nanos(value: Any, where: str, bad: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if type(value) is int and value >= 0:
        return value
    raise bad(where, f"expected epoch nanoseconds (a number or a string of digits), got {json.dumps(value)[:80]}")


def _any_value(value: Any, where: str, bad: Any) -> Any:
    """An OTLP ``AnyValue`` as the Python value the OTel SDK would hold (arrays as tuples)."""
    if not isinstance(value, dict) or len(value) > 1:
        raise bad(where, "expected an AnyValue object with one of stringValue, intValue, doubleValue, boolValue, "
                         "arrayValue, kvlistValue, bytesValue")
    if not value:
        return None
    (kind, inner), = value.items()
    if kind == "stringValue" and isinstance(inner, str):
        return inner
    if kind == "boolValue" and isinstance(inner, bool):
        return inner
    if kind == "intValue" and (type(inner) is int or (isinstance(inner, str) and inner.lstrip("-").isdigit())):
        return int(inner)
    if kind == "doubleValue" and type(inner) in (int, float, str):
        try:
            return float(inner)
        except ValueError:
            pass
    if kind == "arrayValue" and isinstance(inner, dict):
        return tuple(_any_value(v, f"{where}.arrayValue.values[{i}]", bad)
                     for i, v in enumerate(inner.get("values") or []))
    if kind == "kvlistValue" and isinstance(inner, dict):
        return _attributes(inner.get("values") or [], f"{where}.kvlistValue.values", bad)
    if kind == "bytesValue" and isinstance(inner, str):
        return inner
    raise bad(f"{where}.{kind}", f"not a valid {kind}: {json.dumps(inner)[:80]}")


def _attributes(values: Any, where: str, bad: Any) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, list):
        raise bad(where, "expected a list of {key, value} objects")
    out: dict[str, Any] = {}
    for i, item in enumerate(values):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise bad(f"{where}[{i}]", "expected an object with a string key and a value")
        out[item["key"]] = _any_value(item.get("value", {}), f"{where}[{i}].value", bad)
    return out


def _span(raw: Any, where: str, bad: Any) -> SpanRecord:
    if not isinstance(raw, dict):
        raise bad(where, "expected a span object")
    trace_id = _id(raw.get("traceId"), 16, f"{where}.traceId", bad)
    span_id = _id(raw.get("spanId"), 8, f"{where}.spanId", bad)
    parent = _id(raw.get("parentSpanId"), 8, f"{where}.parentSpanId", bad, required=False)
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise bad(f"{where}.name", "expected a string")
    start = _nanos(raw.get("startTimeUnixNano"), f"{where}.startTimeUnixNano", bad)
    end = _nanos(raw.get("endTimeUnixNano", start), f"{where}.endTimeUnixNano", bad)
    if end < start:
        raise bad(f"{where}.endTimeUnixNano", f"{end} is before startTimeUnixNano {start}")
    attributes = _attributes(raw.get("attributes"), f"{where}.attributes", bad)
    status = raw.get("status") or {}
    if not isinstance(status, dict):
        raise bad(f"{where}.status", "expected an object with code and message")
    events = []
    for i, event in enumerate(raw.get("events") or []):
        if not isinstance(event, dict):
            raise bad(f"{where}.events[{i}]", "expected an event object")
        events.append((str(event.get("name", "")),
                       _attributes(event.get("attributes"), f"{where}.events[{i}].attributes", bad)))
    links = []
    for i, link in enumerate(raw.get("links") or []):
        if not isinstance(link, dict):
            raise bad(f"{where}.links[{i}]", "expected a link object")
        links.append((_id(link.get("traceId"), 16, f"{where}.links[{i}].traceId", bad),
                      _id(link.get("spanId"), 8, f"{where}.links[{i}].spanId", bad)))
    message = status.get("message")
    return SpanRecord(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name,
                      attributes=attributes, start_ns=start, end_ns=end, error=status.get("code") in _ERROR_CODES,
                      status_message=message if isinstance(message, str) and message else None, events=events,
                      links=links)


def _requests(path: Path) -> Iterator[tuple[int, str, Any]]:
    """``(line, raw text, request or error)``: the whole file as one JSON document, else JSON lines (when
    its first line is a JSON document of its own); a broken document is one rejection at its error's line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        yield 1, text, json.loads(text)
        return
    except json.JSONDecodeError as whole:
        first = next((line for line in text.splitlines() if line.strip()), "")
        try:
            json.loads(first)
        except ValueError:
            yield whole.lineno, text, ImportInputError(str(path), whole.lineno, "(file)", f"not JSON: {whole}")
            return
    yield from iter_json_lines(path)


def read_spans(path: Path, report: ImportReport) -> list[SpanRecord]:
    """Every readable span of ``path`` with its depth and inherited agent; bad ones go to ``report``."""
    spans: list[SpanRecord] = []
    for line, raw, request in _requests(path):
        if isinstance(request, ImportInputError):
            report.reject(request, raw)
            continue

        def bad(where: str, reason: str, line: int = line) -> ImportInputError:
            return ImportInputError(str(path), line, where, reason)

        if not isinstance(request, dict) or not isinstance(request.get("resourceSpans", []), list):
            report.reject(bad("resourceSpans", "expected an ExportTraceServiceRequest object with a "
                                               "resourceSpans list"), raw)
            continue
        for r, resource in enumerate(request.get("resourceSpans") or []):
            scopes = resource.get("scopeSpans") if isinstance(resource, dict) else None
            if not isinstance(scopes, list):
                report.reject(bad(f"resourceSpans[{r}].scopeSpans", "expected a list"), raw)
                continue
            for s, scope in enumerate(scopes):
                items = scope.get("spans") if isinstance(scope, dict) else None
                if not isinstance(items, list):
                    report.reject(bad(f"resourceSpans[{r}].scopeSpans[{s}].spans", "expected a list"), raw)
                    continue
                for i, item in enumerate(items):
                    try:
                        spans.append(_span(item, f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]", bad))
                    except ImportInputError as exc:
                        report.reject(exc, json.dumps(item, ensure_ascii=False))
    _place(spans)
    return spans


def _place(spans: list[SpanRecord]) -> None:
    """Depth (distance from the root within the file; 1 under a parent the file lacks) and the agent of the
    nearest agent span above, as the live processor computes them when spans start."""
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    placed: dict[tuple[int, int], tuple[int, str | None]] = {}
    for span in spans:
        chain: list[SpanRecord] = []  # from this span up to the first placed one, root or missing parent
        seen: set[tuple[int, int]] = set()
        node: SpanRecord | None = span
        base: tuple[int, str | None] | None = None
        while node is not None:
            key = (node.trace_id, node.span_id)
            if key in placed:
                base = placed[key]
                break
            if key in seen:  # a cycle of parents: cut it as a parent outside the file
                break
            seen.add(key)
            chain.append(node)
            node = by_id.get((node.trace_id, node.parent_span_id)) if node.parent_span_id is not None else None
        for node in reversed(chain):
            own = span_agent(node.attributes)
            if base is None:  # the top of the chain: a root, or its parent is not in the file
                base = (0 if node.parent_span_id is None else 1, own)
            else:
                base = (base[0] + 1, own or base[1])
            placed[(node.trace_id, node.span_id)] = base
    for span in spans:
        span.depth, span.inherited_agent = placed[(span.trace_id, span.span_id)]


def import_otlp_json(paths: Sequence[Path], clients: ClientFactory, report: ImportReport, *,
                     include_all: bool = False) -> ImportReport:
    """Import every GenAI span (``gen_ai.operation.name``; every span with ``include_all``) of every file,
    in the order the live processor records them (by end time); one run per trace."""
    client = clients(None)
    for path in paths:
        report.files += 1
        spans = read_spans(path, report)
        spans.sort(key=lambda s: (s.end_ns, s.start_ns))
        traces = set()
        for span in spans:
            if record_span(client, span, include_all=include_all):
                report.events += 2
                traces.add(span.trace_id)
        report.runs += len(traces)
    return report
