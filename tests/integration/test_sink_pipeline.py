"""The sink on the real embedded broker and the real store server: dead letters, exactly-once
rows under FINAL, built-in incidents, lifecycle events, and the store-only sink
(``consume --no-rules``) storing the incidents topic."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from agentaudit.consumers.dlq import REASON_HEADER, SOURCE_OFFSET_HEADER, SOURCE_TOPIC_HEADER
from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.kafka import KafkaProducer, read_all
from agentaudit.rules.builtin import RULE_COST, RULE_ERROR, RULE_FORBIDDEN_TOOL
from agentaudit.schemas import AvroCodec, Incident
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.sink_support import BASE_US, drain, framed_events

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def sink_settings(group: str, **fields) -> SinkSettings:
    return SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000,
                        batch_timeout_ms=300, **fields)


@pytest.fixture
def migrated(store_settings_factory: Callable[..., StoreSettings]):
    settings = store_settings_factory()
    migrate(settings)
    with connect(settings) as store:
        yield settings, store


def test_bad_messages_go_to_dlq_and_valid_events_land_exactly_once(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, migrated: tuple[StoreSettings, Store]
):
    kafka = kafka_settings_factory(partitions=3, max_message_bytes=8_000)
    store_settings, store = migrated
    events = framed_events(120, stream_id="s-a") + framed_events(120, stream_id="s-b")
    unknown = b"\xc3\x01" + bytes(8) + events[0][1][10:]
    oversized = framed_events(1, stream_id="s-big", input_body="x" * 10_000)[0][1]
    too_deep = framed_events(1, stream_id="s-deep", depth=70_000)[0][1]  # valid Avro, but depth is UInt16
    bad = {b"not avro at all": "bad_magic", unknown: "unknown_fingerprint", oversized: "oversized",
           b"\xc3\x01" + events[0][1][2:12]: "undecodable", too_deep: "unstorable"}
    with KafkaProducer(kafka) as producer:
        for i, (record, data) in enumerate(events):
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())
            if i % 48 == 24:
                junk = list(bad)[(i // 48) % len(bad)]
                producer.produce(kafka.topics.actions, junk, key=b"junk")
    with Sink(kafka, store_settings, sink_settings(group_factory(), batch_size=100)) as sink:
        drain(sink, len(events) + len(bad))
        # A second pass over the same group reads nothing: every offset was committed.
        assert sink.run_once().consumed == 0

    dead = read_all(kafka, kafka.topics.dlq, expected=len(bad), timeout=15, idle=5)
    reasons = sorted(dict(m.headers())[REASON_HEADER].decode() for m in dead)
    assert reasons == sorted(bad.values())
    for message in dead:
        headers = dict(message.headers())
        assert message.value() in bad and headers[SOURCE_TOPIC_HEADER].decode() == kafka.topics.actions
        assert int(headers[SOURCE_OFFSET_HEADER]) >= 0

    total, distinct = store.query("SELECT count(), count(DISTINCT event_id) FROM actions FINAL").rows[0]
    assert total == distinct == len(events)
    raw = store.query("SELECT count() FROM actions").rows[0][0]
    assert raw == len(events)  # no re-read happened, so not even a pre-merge duplicate exists
    stored = {row[0]: row[1] for row in store.query("SELECT event_id, event_hash FROM actions FINAL").rows}
    chains = {r["event_id"]: r for r, _ in events}
    assert stored.keys() == chains.keys()
    # The sink's event_hash is what the next event of the stream carries as prev_hash.
    by_stream = sorted((r for r, _ in events if r["stream_id"] == "s-a"), key=lambda r: r["seq"])
    assert stored[by_stream[0]["event_id"]] == by_stream[1]["prev_hash"]


def test_builtin_rules_open_incidents_in_table_and_topic(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, migrated: tuple[StoreSettings, Store]
):
    kafka = kafka_settings_factory(partitions=1)
    store_settings, store = migrated
    events = (
        framed_events(5, stream_id="calm")
        + framed_events(1, stream_id="tool", start=100, name="shell.exec")
        + framed_events(1, stream_id="cost", start=200, cost_usd=3.5, kind="chat", name="gpt")
        + framed_events(1, stream_id="err", start=300, status="error", error_type="ToolCrashed")
    )
    with KafkaProducer(kafka) as producer:
        for record, data in events:
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())
    settings = sink_settings(group_factory(), forbidden_tools=("shell.exec",), cost_threshold_usd=1.0)
    with Sink(kafka, store_settings, settings) as sink:
        drain(sink, len(events))

    rows = store.query("SELECT rule_id, key, severity, event_ids FROM incidents FINAL ORDER BY rule_id").rows
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (RULE_COST, "action-200", "medium"), (RULE_ERROR, "action-300", "low"), (RULE_FORBIDDEN_TOOL, "action-100", "high")
    ]
    assert rows[2][3] == [events[5][0]["event_id"]]
    published = read_all(kafka, kafka.topics.incidents, expected=3, timeout=15, idle=5)
    codec = AvroCodec("incident")
    decoded = sorted((codec.decode(m.value())["rule_id"], m.key().decode()) for m in published)
    ids = dict(store.query("SELECT rule_id, incident_id FROM incidents FINAL").rows)
    assert decoded == sorted((rule, ids[rule]) for rule in ids)


def test_lifecycle_events_land_in_incident_lifecycle(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, migrated: tuple[StoreSettings, Store]
):
    kafka = kafka_settings_factory(partitions=1)
    store_settings, store = migrated
    codec = AvroCodec("incident_lifecycle")
    lifecycle = [
        {"event_id": str(uuid.uuid4()), "incident_id": "inc-1", "tenant": "acme", "type": kind,
         "actor": {"type": "human", "id": "ann@example.com"}, "assignee": "bob" if kind == "assigned" else None,
         "note": "on it" if kind == "acknowledged" else None, "at_us": BASE_US + i, "attributes": {}}
        for i, kind in enumerate(["opened", "acknowledged", "assigned", "resolved"])
    ]
    actions = framed_events(3)
    with KafkaProducer(kafka) as producer:
        for event in lifecycle:
            producer.produce(kafka.topics.lifecycle, codec.encode(event), key=b"inc-1")
        producer.produce(kafka.topics.lifecycle, b"garbage", key=b"inc-1")
        for record, data in actions:
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())
    with Sink(kafka, store_settings, sink_settings(group_factory())) as sink:
        drain(sink, len(lifecycle) + 1 + len(actions))

    rows = store.query("SELECT type, actor_id, assignee, note FROM incident_lifecycle FINAL ORDER BY at").rows
    assert rows == [("opened", "ann@example.com", "", ""), ("acknowledged", "ann@example.com", "", "on it"),
                    ("assigned", "ann@example.com", "bob", ""), ("resolved", "ann@example.com", "", "")]
    assert store.query("SELECT count() FROM actions FINAL").rows[0][0] == len(actions)
    dead = read_all(kafka, kafka.topics.dlq, expected=1, timeout=10, idle=5)
    assert [dict(m.headers())[SOURCE_TOPIC_HEADER].decode() for m in dead] == [kafka.topics.lifecycle]


def test_store_only_sink_stores_published_incidents_and_dead_letters_bad_ones(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, migrated: tuple[StoreSettings, Store]
):
    """`consume --no-rules`: no judging; the incidents topic (as `rules run` publishes it) lands in ``incidents``."""
    kafka = kafka_settings_factory(partitions=2)
    store_settings, store = migrated

    def incident(incident_id: str, count: int, **fields) -> Incident:
        return Incident(incident_id=incident_id, tenant="acme", rule_id="tool-burst", rule_revision="r1",
                        severity="high", key="agent-1", window_start_us=BASE_US, window_end_us=BASE_US + 60_000_000,
                        agent_id="agent-1", event_ids=tuple(f"e{n}" for n in range(count)), first_seen_us=BASE_US,
                        last_seen_us=BASE_US + count, count=count, summary=f"{count} calls", tags=("stable",),
                        attributes={"tool": "search"}, **fields)

    published = [incident("inc-a", 1), incident("inc-b", 2, owner="sre"), incident("inc-a", 4)]
    codec = AvroCodec("incident")
    # would open a forbidden-tool incident if this sink judged
    actions = framed_events(3, stream_id="s-1") + framed_events(1, stream_id="s-2", start=10, name="shell.exec")
    with KafkaProducer(kafka) as producer:
        for item in published:
            producer.produce(kafka.topics.incidents, codec.encode(item.to_avro()), key=item.incident_id.encode())
        producer.produce(kafka.topics.incidents, b"not an incident", key=b"inc-x")
        for record, data in actions:
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())
    settings = sink_settings(group_factory(), inline_rules=False, forbidden_tools=("shell.exec",))
    with Sink(kafka, store_settings, settings) as sink:
        drain(sink, len(published) + 1 + len(actions))
        assert sink.run_once().consumed == 0  # every offset, the incidents topic's too, was committed

    assert store.query("SELECT count() FROM actions FINAL").rows[0][0] == len(actions)
    columns = "incident_id, severity, severity_rank, owner, event_ids, count, summary, tags, attributes"
    rows = store.query(f"SELECT {columns} FROM incidents FINAL ORDER BY incident_id").rows
    assert rows == [
        ("inc-a", "high", 3, "", ["e0", "e1", "e2", "e3"], 4, "4 calls", ["stable"], {"tool": "search"}),
        ("inc-b", "high", 3, "sre", ["e0", "e1"], 2, "2 calls", ["stable"], {"tool": "search"}),
    ]
    dead = read_all(kafka, kafka.topics.dlq, expected=1, timeout=10, idle=3)
    assert [(m.key(), dict(m.headers())[REASON_HEADER], dict(m.headers())[SOURCE_TOPIC_HEADER].decode())
            for m in dead] == [(b"inc-x", b"bad_magic", kafka.topics.incidents)]
    # nothing judged inline: the incidents topic holds only what was published to it
    assert len(read_all(kafka, kafka.topics.incidents, timeout=10, idle=2)) == len(published) + 1
