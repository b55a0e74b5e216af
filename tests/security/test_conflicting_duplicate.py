"""Attack: rewrite stored evidence by re-sending an event id with another body.

Issue 12: anyone who can produce on the actions topic re-sent an event with the same ``event_id``,
tenant, agent and event time but a benign body. ``actions`` (a ReplacingMergeTree keeping the latest
``ingested_at``) replaced the stored row, ``payments.refund, error, $42`` became ``crm.lookup, ok, $0``,
and the rules skipped the copy as already seen, so no incident fired.

Expected now: both copies are stored (the body hash is in the sort key), merges never remove the
first, the sink marks the forged one ``later_copy``, every reader (the analyst views, the dashboard's trace and
triggering events, replay) shows
the first-seen copy, and ``integrity.conflicting-duplicate`` names the event id and both body hashes,
live and in replay. A copy with the identical body stays a harmless duplicate: one row, no incident.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.replay import replay_range
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.dashboard import queries
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaProducer
from agentaudit.rules import load_evaluator
from agentaudit.schemas import AvroCodec, StreamChain, body_hash, frame_body
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.sink_support import action_record, drain

pytestmark = [pytest.mark.integration, pytest.mark.broker]

RULE = "integrity.conflicting-duplicate"


def test_a_resent_event_id_with_another_body_never_replaces_the_first(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, store_settings_factory: Callable[[], StoreSettings]
):
    kafka = kafka_settings_factory(partitions=1)
    settings = store_settings_factory()
    migrate(settings)
    codec = AvroCodec("action")
    chain = StreamChain("billing-bot/1")
    original = action_record(1, agent_id="billing-bot", trace_id="trace-refund", name="payments.refund",
                             status="error", error_type="card_declined", cost_usd=42.0)
    first = chain.seal(original, codec)
    # The forgery: same event_id, tenant, agent, event time, stream and seq; a benign body.
    forged = dict(original, name="crm.lookup", status="ok", error_type=None, cost_usd=0.0)
    forged_data = codec.encode(forged)
    identical = first  # a plain redelivery of the first copy
    later = action_record(2, agent_id="billing-bot", trace_id="trace-refund")
    later_data = chain.seal(later, codec)
    with KafkaProducer(kafka) as producer:
        for data in (first, forged_data, identical, later_data):
            producer.produce(kafka.topics.actions, data, key=b"billing-bot/1")
    sink_settings = SinkSettings(group=group_factory(), session_timeout_ms=6000, heartbeat_interval_ms=1000,
                                 batch_timeout_ms=300, batch_size=1)  # one message per batch: four inserts
    with Sink(kafka, settings, sink_settings, load_evaluator()) as sink:
        drain(sink, 4)

    first_hash = body_hash(frame_body(first))
    forged_hash = body_hash(frame_body(forged_data))
    event_id = original["event_id"]
    with connect(settings) as store:
        store.command("OPTIMIZE TABLE actions FINAL")  # a merge must not drop either body
        stored = store.query("SELECT event_hash, name, status, cost_usd, later_copy FROM actions "
                             "WHERE event_id = {id:String} ORDER BY ingested_at", {"id": event_id}).rows
        assert stored == [(first_hash, "payments.refund", "error", 42.0, 0), (forged_hash, "crm.lookup", "ok", 0.0, 1)]

        # Readers: the first-seen copy, once.
        assert store.query("SELECT name, status, cost_usd FROM actions_first WHERE event_id = {id:String}",
                           {"id": event_id}).rows == [("payments.refund", "error", 42.0)]
        assert store.query("SELECT name, cost_usd FROM actions_owned WHERE event_id = {id:String}",
                           {"id": event_id}).rows == [("payments.refund", 42.0)]
        assert store.query("SELECT sum(cost_usd) FROM cost_daily").rows[0][0] == pytest.approx(42.0 + later["cost_usd"])
        conflicts = store.query("SELECT event_id, copies, first_hash, later_hashes FROM action_conflicts").rows
        assert conflicts == [(event_id, 2, first_hash, [forged_hash])]
        trace = queries.trace(store, "acme", "trace-refund")
        assert list(trace["event_id"]) == [event_id, later["event_id"]]
        assert trace.iloc[0]["name"] == "payments.refund" and trace.iloc[0]["event_hash"] == first_hash
        named = queries.triggering_events(store, "acme", [event_id])
        assert list(named["name"]) == ["payments.refund"]

        # The live incident names the event and both bodies.
        incidents = store.query("SELECT key, event_ids, attributes FROM incidents FINAL WHERE rule_id = {r:String}",
                                {"r": RULE}).rows
        assert len(incidents) == 1
        key, event_ids, attributes = incidents[0]
        assert key == event_id and list(event_ids) == [event_id]
        assert attributes["first_hash"] == first_hash and attributes["conflict_hash"] == forged_hash
        # No other integrity rule mistook the copies for a broken stream, and only one body was judged.
        others = store.query("SELECT rule_id FROM incidents FINAL WHERE rule_id LIKE 'integrity.%' "
                             "AND rule_id != {r:String}", {"r": RULE}).rows
        assert others == []

        # Replay judges the first copy and raises the same incident.
        replayed = [i for i in replay_range(store, None) if i.rule_id == RULE]
        assert [(i.key, i.attributes["first_hash"], i.attributes["conflict_hash"]) for i in replayed] == [
            (event_id, first_hash, forged_hash)]
