"""OpenTelemetry GenAI spans, made by the real OTel SDK, become agentaudit action events."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from agentaudit.producers.otel import AuditSpanExporter, AuditSpanProcessor, span_action_id
from agentaudit.schemas import verify_streams
from tests.sdk_support import offline_client, spooled


def _agent_run(provider: TracerProvider) -> dict[str, int]:
    tracer = provider.get_tracer("test-agent-framework")
    ids: dict[str, int] = {}
    with tracer.start_as_current_span("invoke_agent travel-planner", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "travel-planner"}) as root:
        ids["root"] = root.get_span_context().span_id
        ids["trace"] = root.get_span_context().trace_id
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 812,
                "gen_ai.usage.output_tokens": 95, "gen_ai.system": "openai"}) as chat:
            ids["chat"] = chat.get_span_context().span_id
        try:
            with tracer.start_as_current_span("execute_tool book_flight", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "book_flight"}) as tool:
                ids["tool"] = tool.get_span_context().span_id
                raise ConnectionError("airline API down")
        except ConnectionError:
            pass
        with tracer.start_as_current_span("http GET") as http:  # not a GenAI span: left out
            http.set_status(Status(StatusCode.OK))
    return ids


def test_the_span_processor_turns_genai_spans_into_linked_actions(tmp_path: Path) -> None:
    audit = offline_client(tmp_path, agent="fallback-agent")
    provider = TracerProvider()
    provider.add_span_processor(AuditSpanProcessor(audit))
    ids = _agent_run(provider)
    provider.shutdown()
    audit.close(timeout=0.2)
    recorded = spooled(tmp_path)
    records = [r for r, _ in recorded]
    assert verify_streams(recorded) == []
    assert len(records) == 6 and {r["phase"] for r in records} == {"start", "end"}
    trace_hex = f"{ids['trace']:032x}"
    assert {r["trace_id"] for r in records} == {trace_hex}
    by = {(r["kind"], r["phase"]): r for r in records}

    root = by[("invoke_agent", "end")]
    assert root["action_id"] == span_action_id(ids["trace"], ids["root"]) == by[("invoke_agent", "start")]["action_id"]
    assert (root["name"], root["agent_id"], root["depth"], root["parent_action_id"]) == (
        "travel-planner", "travel-planner", 0, None)

    chat = by[("chat", "end")]
    assert (chat["name"], chat["model"], chat["input_tokens"], chat["output_tokens"]) == (
        "gpt-4o-2024-08-06", "gpt-4o-2024-08-06", 812, 95)
    assert (chat["parent_action_id"], chat["depth"], chat["agent_id"]) == (root["action_id"], 1, "travel-planner")
    assert chat["attributes"]["gen_ai.system"] == "openai" and chat["status"] == "ok"
    assert chat["latency_us"] == chat["end_time_us"] - chat["start_time_us"]

    tool = by[("execute_tool", "end")]
    assert (tool["name"], tool["status"], tool["error_type"]) == ("book_flight", "error", "ConnectionError")
    assert "airline API down" in tool["error_message"]
    assert tool["action_id"] == span_action_id(ids["trace"], ids["tool"])


def test_the_exporter_records_finished_spans_too(tmp_path: Path) -> None:
    audit = offline_client(tmp_path, agent="fallback-agent")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(AuditSpanExporter(audit)))
    ids = _agent_run(provider)
    provider.shutdown()
    audit.close(timeout=0.2)
    records = [r for r, _ in spooled(tmp_path)]
    tool = next(r for r in records if r["kind"] == "execute_tool" and r["phase"] == "end")
    assert tool["parent_action_id"] == span_action_id(ids["trace"], ids["root"])
    # the exporter sees children before their parent, so it cannot inherit the agent name
    assert tool["agent_id"] == "fallback-agent" and tool["depth"] == 1


@pytest.mark.parametrize("include_all", [True, False])
def test_non_genai_spans_only_on_request(tmp_path: Path, include_all: bool) -> None:
    audit = offline_client(tmp_path)
    provider = TracerProvider()
    provider.add_span_processor(AuditSpanProcessor(audit, include_all=include_all))
    with provider.get_tracer("t").start_as_current_span("plain work"):
        pass
    provider.shutdown()
    audit.close(timeout=0.2)
    records = [r for r, _ in spooled(tmp_path)]
    assert [(r["kind"], r["name"]) for r in records] == ([("other", "plain work")] * 2 if include_all else [])
