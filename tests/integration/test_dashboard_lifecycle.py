"""Dashboard actions are lifecycle events on Kafka; the sink stores them and the folded state changes."""

from __future__ import annotations

import time

import pytest

from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.dashboard import AuthError, LifecyclePublisher, PublishError
from agentaudit.dashboard import queries as q
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import read_all
from agentaudit.schemas import AvroCodec
from agentaudit.settings import KafkaSettings, TopicNames
from tests.authority_support import make_operators
from tests.dashboard_support import seeded_database

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def test_acknowledge_assign_resolve_reach_kafka_and_fold_into_the_state(kafka_settings_factory, group_factory,
                                                                         store_server, tmp_path):
    kafka = kafka_settings_factory(partitions=1)
    store_settings, _ = seeded_database(store_server.url, big_trace_actions=5)
    # Signed: the dashboard's service key signs for each person; the sink stores only what the authority admits.
    operators = make_operators(tmp_path, people_may=["acknowledge", "assign", "resolve"])
    with LifecyclePublisher(kafka, key=operators.dashboard) as publisher:
        acked = publisher.acknowledge("inc-critical-open", actor="alice", tenant="acme", note="on it")
        assigned = publisher.assign("inc-critical-open", "team-sre", actor="alice", tenant="acme")
        resolved = publisher.resolve("inc-critical-open", actor="bob", tenant="acme", note="tool revoked")

    messages = read_all(kafka, kafka.topics.lifecycle, expected=3, timeout=15, idle=5)
    codec = AvroCodec("incident_lifecycle")
    decoded = [codec.decode(m.value()) for m in messages]
    assert [m.key() for m in messages] == [b"inc-critical-open"] * 3
    assert [(d["type"], d["actor"], d["assignee"], d["note"]) for d in decoded] == [
        ("acknowledged", {"type": "human", "id": "alice"}, None, "on it"),
        ("assigned", {"type": "human", "id": "alice"}, "team-sre", None),
        ("resolved", {"type": "human", "id": "bob"}, None, "tool revoked"),
    ]
    assert [d["event_id"] for d in decoded] == [acked.event_id, assigned.event_id, resolved.event_id]

    sink_settings = SinkSettings(group=group_factory(), batch_timeout_ms=200, session_timeout_ms=6000,
                                 heartbeat_interval_ms=1000)
    with connect(store_settings, readonly=True) as reader:
        assert q.incident(reader, "inc-critical-open")["status"] == "open"
        with Sink(kafka, store_settings, sink_settings, authority=operators.authority) as sink:
            deadline = time.monotonic() + 40
            while len(q.lifecycle_history(reader, "inc-critical-open")) < 3 and time.monotonic() < deadline:
                sink.run_once()
        state = q.incident(reader, "inc-critical-open")
    assert (state["status"], state["acknowledged_by"], state["assignee"], state["resolved_by"], state["last_note"]) == (
        "resolved", "alice", "team-sre", "bob", "tool revoked")


def test_acting_without_an_actor_is_refused_before_kafka(kafka_settings_factory):
    with LifecyclePublisher(kafka_settings_factory(partitions=1)) as publisher, pytest.raises(AuthError):
        publisher.acknowledge("inc-1", actor="")


def test_an_unreachable_broker_is_a_publish_error_not_a_hang():
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:9", topics=TopicNames(lifecycle="nowhere"))
    started = time.monotonic()
    with pytest.raises(PublishError) as caught:
        LifecyclePublisher(settings, timeout=1.5).acknowledge("inc-1", actor="alice")
    assert time.monotonic() - started < 10
    assert caught.value.code is not None and "nowhere" in str(caught.value)
