"""OTLP JSON files written by the real opentelemetry-sdk and OTLP encoder import as the very events the
live AuditSpanProcessor records for the same spans; bad spans are rejected with file, line and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentaudit.producers.importers import ImportReport, import_otlp_json
from agentaudit.producers.otel import AuditSpanProcessor
from agentaudit.schemas import verify_streams
from tests.import_support import otel_runs, otlp_json
from tests.sdk_support import offline_client, records_of, spooled

BASE_US = 1_772_355_600_000_000  # 2026-03-01T09:00:00Z
_VOLATILE = ("event_id", "stream_id", "seq", "prev_hash", "run_id")  # run_id: each client's own


def _live_and_file(tmp_path: Path, *, collector_form: bool) -> tuple[list[dict[str, Any]], Path, int]:
    audit = offline_client(tmp_path / "live", agent="fallback-agent")
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(AuditSpanProcessor(audit))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    otel_runs(provider, BASE_US)
    provider.shutdown()
    audit.close(timeout=0.5)
    spans = memory.get_finished_spans()
    path = tmp_path / ("traces.jsonl" if collector_form else "traces.json")
    path.write_text(otlp_json(spans, collector_form=collector_form))
    return records_of(tmp_path / "live"), path, len(spans)


def _rows(records: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k not in _VOLATILE}, sort_keys=True) for r in records)


@pytest.mark.parametrize("collector_form", [False, True], ids=["protobuf-json", "collector-jsonl-hex-ids"])
def test_an_otlp_json_file_imports_as_the_live_processor_records_it(tmp_path: Path, collector_form: bool) -> None:
    live, path, spans = _live_and_file(tmp_path, collector_form=collector_form)
    audit = offline_client(tmp_path / "imported", agent="fallback-agent")
    report = import_otlp_json([path], lambda tenant: audit, ImportReport())
    audit.close(timeout=0.5)
    imported = records_of(tmp_path / "imported")
    genai = spans - 4  # one plain http span per run is left out, as live
    assert (report.runs, report.events, report.rejected) == (4, 2 * genai, [])
    assert len(imported) == len(live) == 2 * genai
    assert _rows(imported) == _rows(live)  # ids, parents, depth, times, status, errors, tokens, attributes, links
    assert verify_streams(spooled(tmp_path / "imported")) == []
    error = next(r for r in imported if r["name"] == "book_flight" and r["phase"] == "end")
    assert (error["status"], error["error_type"], error["error_message"]) == (
        "error", "ConnectionError", "airline API down")
    assert {r["depth"] for r in imported if r["kind"] == "execute_tool"} == {1}
    assert min(r["event_time_us"] for r in imported) == BASE_US  # the recorded times, not now


def test_a_child_exported_without_its_parent_in_the_file_sits_at_depth_one_and_keeps_its_own_agent(
        tmp_path: Path) -> None:
    _live, path, _ = _live_and_file(tmp_path, collector_form=False)
    request = json.loads(path.read_text())
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    request["resourceSpans"][0]["scopeSpans"][0]["spans"] = [s for s in spans if not s["name"].startswith("invoke")]
    path.write_text(json.dumps(request))
    audit = offline_client(tmp_path / "imported", agent="fallback-agent")
    report = import_otlp_json([path], lambda tenant: audit, ImportReport())
    audit.close(timeout=0.5)
    records = records_of(tmp_path / "imported")
    assert report.rejected == [] and records and {r["depth"] for r in records} == {1}
    assert {r["agent_id"] for r in records} == {"fallback-agent"}  # the agent span above is not in the file


def _mutated(tmp_path: Path, change: Any) -> Path:
    _, path, _ = _live_and_file(tmp_path, collector_form=False)
    request = json.loads(path.read_text())
    change(request["resourceSpans"][0]["scopeSpans"][0]["spans"][1])
    path.write_text(json.dumps(request))
    return path


BAD_SPANS: list[tuple[str, Any, str, str]] = [
    ("start", lambda s: s.update(startTimeUnixNano="soon"), "startTimeUnixNano", "epoch nanoseconds"),
    ("trace", lambda s: s.update(traceId="xyz"), "traceId", "16-byte id"),
    ("end", lambda s: s.update(endTimeUnixNano="1"), "endTimeUnixNano", "before startTimeUnixNano"),
    ("attr", lambda s: s["attributes"].append({"key": "n", "value": {"intValue": "ten"}}),
     ".value.intValue", "not a valid intValue"),
]


@pytest.mark.parametrize(("label", "change", "field", "reason"), BAD_SPANS, ids=[b[0] for b in BAD_SPANS])
def test_a_bad_span_is_rejected_with_its_field_and_the_others_are_imported(
        tmp_path: Path, label: str, change: Any, field: str, reason: str) -> None:
    path = _mutated(tmp_path, change)
    audit = offline_client(tmp_path / "imported")
    report = import_otlp_json([path], lambda tenant: audit, ImportReport())
    audit.close(timeout=0.5)
    assert len(report.rejected) == 1 and report.events > 0
    error = report.rejected[0]
    assert error.path == str(path) and error.line == 1
    assert error.field.startswith("resourceSpans[0].scopeSpans[0].spans[1].")
    assert error.field.endswith(field), error.field
    assert reason in error.reason


def test_a_file_that_is_not_otlp_json_is_rejected_by_line(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"resourceSpans": []}\nnot json\n{"resourceSpans": [{"scopeSpans": 3}]}\n')
    audit = offline_client(tmp_path / "spool")
    report = import_otlp_json([path], lambda tenant: audit, ImportReport())
    audit.close(timeout=0.5)
    assert [(e.line, e.field) for e in report.rejected] == [(2, "(line)"), (3, "resourceSpans[0].scopeSpans")]


def test_a_broken_pretty_printed_file_is_one_rejection_at_the_line_of_its_error(tmp_path: Path) -> None:
    _, path, _ = _live_and_file(tmp_path, collector_form=False)
    lines = path.read_text().splitlines()
    lines[7] = lines[7] + " @"  # a stray character in the middle of the document (line 8)
    path.write_text("\n".join(lines))
    audit = offline_client(tmp_path / "imported")
    report = import_otlp_json([path], lambda tenant: audit, ImportReport())
    audit.close(timeout=0.5)
    assert [(e.field, e.line) for e in report.rejected] == [("(file)", 8)] and report.events == 0
    assert "not JSON" in report.rejected[0].reason
