"""The end-to-end and peer benchmarks compare like with like: the shared workload, recorded through the SDK
(real sealed events, read back from an offline client's spool) and through OpenTelemetry, gives one action per
span with the same tree, kinds, names, models, tokens and tool arguments."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentaudit.producers import AuditClient
from benchmarks._agent_workload import RUN_STEPS, agent_runs, record_otel, record_sdk
from tests.sdk_support import offline_client, records_of


def test_agent_runs_rounds_up_to_whole_runs() -> None:
    runs = agent_runs(RUN_STEPS * 2 + 1)
    assert len(runs) == 3
    assert all(1 + len(run.children) == RUN_STEPS for run in runs)


def test_the_sdk_and_otel_record_the_same_steps(tmp_path: Path) -> None:
    runs = agent_runs(3 * RUN_STEPS)
    audit: AuditClient = offline_client(tmp_path / "spool")
    try:
        assert record_sdk(audit, runs) == 3 * RUN_STEPS
        audit.flush(0.5)
    finally:
        audit.close(0.5)
    ends = [r for r in records_of(tmp_path / "spool") if r["phase"] == "end"]
    starts = [r for r in records_of(tmp_path / "spool") if r["phase"] == "start"]

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    assert record_otel(provider.get_tracer("test"), runs) == 3 * RUN_STEPS
    provider.shutdown()
    spans = memory.get_finished_spans()

    # one action (a start and an end event) per span
    assert len(spans) == len(ends) == len(starts) == 3 * RUN_STEPS

    def action_row(record: dict) -> tuple:
        parent = by_id[record["parent_action_id"]] if record["parent_action_id"] else None
        return (record["kind"], record["name"], record.get("model"), record["input_tokens"],
                record["output_tokens"], parent and (parent["kind"], parent["name"]), record["depth"])

    def span_row(span) -> tuple:  # type: ignore[no-untyped-def]  # an SDK ReadableSpan
        a = span.attributes
        parent = spans_by_id[span.parent.span_id] if span.parent is not None else None
        depth = 0 if parent is None else 1
        return (a["gen_ai.operation.name"], span.name.split(" ", 1)[1], a.get("gen_ai.request.model"),
                a.get("gen_ai.usage.input_tokens", 0), a.get("gen_ai.usage.output_tokens", 0),
                parent and (parent.attributes["gen_ai.operation.name"], parent.name.split(" ", 1)[1]), depth)

    by_id = {r["action_id"]: r for r in ends}
    spans_by_id = {s.context.span_id: s for s in spans}
    assert sorted(map(action_row, ends), key=repr) == sorted(map(span_row, spans), key=repr)
    # one trace per run on both sides
    assert len({r["trace_id"] for r in ends}) == len({s.context.trace_id for s in spans}) == 3
    # the tool arguments: recorded by the SDK as a digest of the very text the span carries
    tool_args = [s.attributes["gen_ai.tool.call.arguments"] for s in spans
                 if s.attributes["gen_ai.operation.name"] == "execute_tool"]
    assert sorted(tool_args) == sorted(step.arguments for run in runs for step in run.children if step.arguments)
    assert all(json.loads(text)["fields"] == ["status"] for text in tool_args)
    tool_starts = [r for r in starts if r["kind"] == "execute_tool"]
    digests = {r["input_digest"] for r in tool_starts}
    assert None not in digests and len(digests) == len(tool_args) == 15
