"""The stock OpenTelemetry OpenAI instrumentation (the real ``opentelemetry-instrumentation-openai-v2``)
traces the real ``openai`` client calling the fake endpoint; agentaudit's :class:`AuditSpanProcessor` on the
same ``TracerProvider`` records its GenAI spans through the SDK on the real broker: the instrumentation's
chat spans become ``chat`` actions with model and tokens, under the application's own agent span. The same
spans exported by the stock OTLP/HTTP exporter to ``agentaudit otlp`` arrive as the same actions."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentaudit.producers.otel import AuditSpanProcessor
from agentaudit.settings import KafkaSettings
from tests.fixtures.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.framework_support import assert_one_tree, broker_client, read_actions, stored_actions
from tests.otlp_support import TOKENS, receiver

pytestmark = [pytest.mark.integration, pytest.mark.broker]

TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "Look an order up.",
                                           "parameters": {"type": "object",
                                                          "properties": {"order_id": {"type": "integer"}}}}}]


@pytest.fixture
def instrumented() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def test_the_stock_openai_instrumentation_yields_chat_actions_under_the_agent(
        instrumented: TracerProvider, fake_openai: FakeOpenAI, kafka_settings: KafkaSettings,
        topic_factory: Callable[..., str], tmp_path: Path) -> None:
    fake_openai.script[:] = [Reply(tool_calls=[ToolCall("lookup_order", {"order_id": 42})], input_tokens=88,
                                   output_tokens=12),
                             Reply(text="Order 42 has shipped.", input_tokens=109, output_tokens=7)]
    audit = broker_client(kafka_settings, topic_factory, tmp_path)
    instrumented.add_span_processor(AuditSpanProcessor(audit))
    tracer = instrumented.get_tracer("support-app")
    with OpenAI(base_url=fake_openai.base_url, api_key="sk-fake") as client, tracer.start_as_current_span(
            "invoke_agent support", attributes={"gen_ai.operation.name": "invoke_agent",
                                                "gen_ai.agent.name": "support"}):
        messages: list[dict] = [{"role": "user", "content": "Where is order 42?"}]
        first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
        call = first.choices[0].message.tool_calls[0]
        with tracer.start_as_current_span("execute_tool lookup_order", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.function.name}):
            result = json.dumps({"order_id": json.loads(call.function.arguments)["order_id"], "status": "shipped"})
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": result}]
        final = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == "Order 42 has shipped."

    actions = stored_actions(audit)
    root = assert_one_tree(actions)
    assert (root["kind"], root["name"], root["agent_id"]) == ("invoke_agent", "support", "support")
    chats = [a for a in actions if a["kind"] == "chat"]
    assert [(c["name"], c["model"], c["input_tokens"], c["output_tokens"], c["status"]) for c in chats] == [
        ("gpt-4o-mini", "gpt-4o-mini", 88, 12, "ok"), ("gpt-4o-mini", "gpt-4o-mini", 109, 7, "ok")]
    # the instrumentation's spans hang under the application's agent span and inherit its agent
    assert all(c["parent_action_id"] == root["action_id"] and c["depth"] == 1 for c in chats)
    assert all(c["agent_id"] == "support" for c in chats)
    assert all(c["attributes"].get("otel.span_name") == "chat gpt-4o-mini" for c in chats)
    (tool,) = [a for a in actions if a["kind"] == "execute_tool"]
    assert tool["name"] == "lookup_order" and chats[0]["end_time_us"] <= tool["start_time_us"]


def test_the_instrumentation_exported_over_otlp_reaches_the_receiver_as_actions(
        instrumented: TracerProvider, fake_openai: FakeOpenAI, kafka_settings_factory: Callable[..., KafkaSettings],
        tmp_path: Path) -> None:
    fake_openai.script[:] = [Reply(text="Order 42 has shipped.", input_tokens=57, output_tokens=6)]
    kafka = kafka_settings_factory(partitions=1)
    with receiver(tmp_path, kafka) as otlp:
        exporter = OTLPSpanExporter(endpoint=otlp.url, headers={"authorization": f"Bearer {TOKENS['acme']}"})
        instrumented.add_span_processor(BatchSpanProcessor(exporter))
        tracer = instrumented.get_tracer("support-app")
        with OpenAI(base_url=fake_openai.base_url, api_key="sk-fake") as client, tracer.start_as_current_span(
                "invoke_agent support", attributes={"gen_ai.operation.name": "invoke_agent",
                                                    "gen_ai.agent.name": "support"}):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Order 42?"}])
        assert instrumented.force_flush(30_000)
        assert otlp.clients.flush(30)
    actions = read_actions(kafka, kafka.topics.actions)
    root = assert_one_tree(actions)
    (chat,) = [a for a in actions if a["kind"] == "chat"]
    assert (root["name"], root["tenant"], chat["tenant"]) == ("support", "acme", "acme")
    assert (chat["model"], chat["input_tokens"], chat["output_tokens"]) == ("gpt-4o-mini", 57, 6)
    assert (chat["parent_action_id"], chat["agent_id"]) == (root["action_id"], "support")
