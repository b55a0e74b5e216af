"""Conversation mode into a real broker: every event arrives decodable and chained, and the pack judges what
arrived as it judges the corpus (the injected breaches, nothing else)."""

from __future__ import annotations

import pytest

from agentaudit.infra.kafka import read_all
from agentaudit.producers.simulator.conversation import EXPECTED_RULES, ConversationSource
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import replay
from agentaudit.schemas import AvroCodec, body_hash, frame_body, verify_streams

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def test_conversations_arrive_decodable_chained_and_judged(kafka_settings_factory):
    settings = kafka_settings_factory(partitions=2)
    source = ConversationSource(120, seed=21, breach_rate=0.3)
    stats = source.run_to_kafka(settings)
    assert stats.traces == 120 and stats.events > 4_000
    messages = read_all(settings, settings.topics.actions, timeout=60, expected=stats.events)
    assert len(messages) == stats.events
    records, _, failures = AvroCodec("action").decode_batch([m.value() for m in messages])
    assert not failures
    for message, record in zip(messages, records, strict=True):
        assert message.key() == record["stream_id"].encode()
        record["event_hash"] = body_hash(frame_body(message.value()))
    assert verify_streams([(r, r["event_hash"]) for r in records]) == []
    # what a consumer reads: partitions one after the other, each in order; judged in event-time order
    records.sort(key=lambda r: (r["event_time_us"], r["stream_id"], r["seq"]))
    incidents = replay(RuleEvaluator(load_rule_set(None)), records, batch_size=500)
    assert source.injected
    for breach in source.injected:
        assert any(i.rule_id == EXPECTED_RULES[breach.kind][0] and breach.event_id in i.event_ids
                   for i in incidents), breach
    allowed = {rule for b in source.injected for rule in EXPECTED_RULES[b.kind]}
    assert {i.rule_id for i in incidents} <= allowed
