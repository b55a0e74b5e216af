"""Poison messages against the consumer, through the real sink on the real broker into the real store:
none may halt ingestion. Each poison costs at most a bounded delay; the valid events around it are
all stored exactly once (``count() = count(DISTINCT event_id)``); incidents of other tenants in the
same batch are all raised. Each test states the attack (the exact message) and the expected outcome.

Before the fix, the first two attacks made the sink retry one batch forever (its dead letter was
larger than the producer accepts: MSG_SIZE_TOO_LARGE), and the third lost another tenant's budget
incident (the aggregate overflowed and the rule dropped the whole batch's events).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentaudit.consumers.dlq import (
    ORIGINAL_SHA256_HEADER,
    ORIGINAL_SIZE_HEADER,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
)
from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.rules_worker import (
    COPIES_HEADER,
    EVENT_TIME_HEADER,
    KEY_CLASS_HEADER,
    MARKER_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    RulesWorker,
)
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.kafka import KafkaAdmin, KafkaProducer, read_all
from agentaudit.rules import RuleEvaluator, load_evaluator, load_rule_set
from agentaudit.rules.builtin import RULE_COST, RULE_FORBIDDEN_TOOL, BuiltinEvaluator
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.rules.evaluator import RULE_ERROR_ID
from agentaudit.schemas import AvroCodec
from agentaudit.settings import KafkaSettings, StoreSettings, TopicNames
from tests.fixtures.broker import external_bootstrap, test_consumer_config
from tests.sink_support import action_record, drain, framed_events

pytestmark = [pytest.mark.integration, pytest.mark.broker]

#: Every poison must be got past within this (the sink's own batch timeouts included).
BOUND_S = 30.0


@pytest.fixture
def poison_kafka(kafka_settings: KafkaSettings, kafka_admin: KafkaAdmin) -> Callable[..., KafkaSettings]:
    """``make(dlq=None) -> KafkaSettings``: uuid topics; the actions topic takes messages up to 2 MB (Apache
    Kafka's default is 1 MB) so a 1.5 MB poison can be published; ``dlq`` names the dead-letter topic instead."""

    def make(dlq: str | None = None, dlq_config: dict[str, str] | None = None) -> KafkaSettings:
        prefix = f"aa-{uuid.uuid4().hex[:16]}"
        names = {name: f"{prefix}.{name}" for name in TopicNames.model_fields}
        if dlq is not None:
            names["dlq"] = f"{prefix}.{dlq}"
        topics = TopicNames(**names)
        kafka_admin.ensure_topics([topics.actions], partitions=2, config={"max.message.bytes": "2000000"})
        if dlq is None:
            kafka_admin.ensure_topics([topics.dlq], partitions=2, config=dlq_config)
        kafka_admin.ensure_topics([t for n, t in names.items() if n not in ("actions", "dlq")], partitions=2)
        base = kafka_settings.model_dump(exclude={"topics"})
        base.update(partitions=2)
        return KafkaSettings(**base, topics=topics)

    return make


@pytest.fixture
def store(store_settings_factory: Callable[..., StoreSettings]):
    settings = store_settings_factory()
    migrate(settings)
    with connect(settings) as client:
        yield settings, client


def _sink_settings(group: str, tmp_path: Path, **fields: Any) -> SinkSettings:
    fields = {"batch_size": 40, **fields}
    return SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000, batch_timeout_ms=300,
                        quarantine_path=str(tmp_path / "quarantine.jsonl"), **fields)


def _publish(kafka: KafkaSettings, events: list[tuple[dict[str, Any], bytes]], poison: list[bytes]) -> None:
    """The valid events of each stream in order, each poison in the middle of them."""
    middle = len(events) // 2
    with KafkaProducer(kafka, {"message.max.bytes": 2_000_000}) as producer:
        for i, (record, data) in enumerate(events):
            if i == middle:
                for value in poison:
                    producer.produce(kafka.topics.actions, value, key=b"poison")
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())


def _assert_stored_once(client: Store, events: list[tuple[dict[str, Any], bytes]]) -> None:
    total, distinct = client.query("SELECT count(), count(DISTINCT event_id) FROM actions FINAL").rows[0]
    assert total == distinct == len(events)
    stored = {row[0] for row in client.query("SELECT event_id FROM actions FINAL").rows}
    assert stored == {record["event_id"] for record, _ in events}


def _valid_events() -> list[tuple[dict[str, Any], bytes]]:
    return (framed_events(60, stream_id="s-a", tenant="acme")
            + framed_events(60, stream_id="s-b", start=1000, tenant="globex"))


@pytest.mark.parametrize(("size", "reason"), [(999_990, "undecodable"), (1_500_000, "oversized")])
def test_a_dead_letter_is_cut_to_what_the_broker_accepts(
    poison_kafka, group_factory, store, tmp_path: Path, size: int, reason: str,
):
    """Attack: one message of ``size`` bytes on the actions topic: the single-object header and a valid
    Avro body of an action, then ``0xff`` bytes up to ``size`` (999 990 B: under the sink's 1 000 000 B
    limit but undecodable; 1.5 MB: over it). Expected: its dead letter fits the producer's limit
    (value cut, original size and SHA-256 in headers), the sink moves on within the bound, every valid
    event around it is stored once."""
    kafka = poison_kafka()
    store_settings, client = store
    events = _valid_events()
    poison = events[0][1] + b"\xff" * (size - len(events[0][1]))
    _publish(kafka, events, [poison])
    began = time.monotonic()
    with Sink(kafka, store_settings, _sink_settings(group_factory(), tmp_path)) as sink:
        drain(sink, len(events) + 1, timeout=BOUND_S)
        cut = sink.metrics.registry.get_sample_value("agentaudit_sink_dlq_cut_total")
    elapsed = time.monotonic() - began
    _assert_stored_once(client, events)
    [dead] = read_all(kafka, kafka.topics.dlq, expected=1, timeout=15, idle=3)
    headers = {k: v.decode() for k, v in dead.headers()}
    assert headers[REASON_HEADER] == reason
    assert int(headers[ORIGINAL_SIZE_HEADER]) == size
    assert headers[ORIGINAL_SHA256_HEADER] == hashlib.sha256(poison).hexdigest()
    assert poison.startswith(dead.value()) and 900_000 < len(dead.value()) < 1_000_000
    assert len(dead.value()) + sum(len(k) + len(v) for k, v in dead.headers()) + len(dead.key()) <= 1_000_000
    assert cut == 1
    print(f"\n[poison {size} B] got past in {elapsed:.1f}s, dead letter {len(dead.value())} B")
    assert elapsed < BOUND_S


def test_two_1e308_costs_cost_no_other_tenant_its_budget_incident(poison_kafka, group_factory, store, tmp_path):
    """Attack: tenant ``evil`` publishes two valid events with ``cost_usd=1e308``, in the batch where tenant
    ``victim``'s agent spends 6 x 10 USD (the default pack's budget is 50 USD a day). Expected: every event
    stored once; ``victim``'s cost.agent-daily-budget incident (60 USD) and ``evil``'s (saturated, inf)
    are both in the incidents table; no rule_error (an overflow is a defined outcome)."""
    kafka = poison_kafka()
    store_settings, client = store
    events = (framed_events(20, stream_id="calm", tenant="calm", cost_usd=0.01)
              + framed_events(2, stream_id="evil", start=100, tenant="evil", agent_id="evil-bot", kind="chat",
                              name="gpt", cost_usd=1e308)
              + framed_events(6, stream_id="victim", start=200, tenant="victim", agent_id="victim-bot", kind="chat",
                              name="gpt", cost_usd=10.0))
    _publish(kafka, events, [])
    began = time.monotonic()
    settings = _sink_settings(group_factory(), tmp_path, batch_size=1000)
    with Sink(kafka, store_settings, settings, load_evaluator(None)) as sink:
        drain(sink, len(events), timeout=BOUND_S)
    elapsed = time.monotonic() - began
    _assert_stored_once(client, events)
    rows = client.query("SELECT rule_id, tenant, attributes['value'], count FROM incidents FINAL "
                        "WHERE rule_id = 'cost.agent-daily-budget' ORDER BY tenant").rows
    assert [tuple(r) for r in rows] == [("cost.agent-daily-budget", "evil", "inf", 2),
                                        ("cost.agent-daily-budget", "victim", "60.0", 6)]
    assert client.query(f"SELECT count() FROM incidents FINAL WHERE rule_id = '{RULE_ERROR_ID}'").rows[0][0] == 0
    assert elapsed < BOUND_S


class _CrashesOn(BaseEvaluator):
    """A plug-in evaluator (the sink takes any) with a bug: it raises on any batch holding a tool named
    ``crash-me``, and otherwise judges as the built-in rules do."""

    def __init__(self) -> None:
        self.inner = BuiltinEvaluator(forbidden_tools=["shell.exec"], cost_threshold_usd=1.0)
        self.revision = self.inner.revision

    def evaluate(self, records):
        if any(r["name"] == "crash-me" for r in records):
            raise ZeroDivisionError("division by zero in the plug-in's rule")
        return self.inner.evaluate(records)


def test_an_evaluator_crashing_on_an_event_costs_only_that_event_its_judgement(
    poison_kafka, group_factory, store, tmp_path,
):
    """Attack: a valid event of tenant ``t1`` whose tool name ``crash-me`` makes the evaluator raise, in one
    batch with tenant ``t2``'s forbidden tool call and tenant ``t3``'s 5 USD event whose tool name is
    990 000 characters (quoted by the built-in cost rule's summary: an incident larger than a Kafka
    message). Expected: every event stored once; a rule_error incident names the evaluator, the event
    and the error; ``t2``'s and ``t3``'s incidents are raised (``t3``'s summary cut)."""
    kafka = poison_kafka()
    store_settings, client = store
    crash = framed_events(1, stream_id="t1", tenant="t1", name="crash-me")
    events = (framed_events(10, stream_id="t0", start=10, tenant="t0") + crash
              + framed_events(1, stream_id="t2", start=100, tenant="t2", name="shell.exec")
              + framed_events(1, stream_id="t3", start=200, tenant="t3", cost_usd=5.0, name="x" * 990_000))
    _publish(kafka, events, [])
    began = time.monotonic()
    settings = _sink_settings(group_factory(), tmp_path, batch_size=1000)
    with Sink(kafka, store_settings, settings, _CrashesOn()) as sink:
        drain(sink, len(events), timeout=BOUND_S)
    elapsed = time.monotonic() - began
    _assert_stored_once(client, events)
    rows = {r[0]: r for r in client.query(
        "SELECT tenant, rule_id, key, event_ids, summary, attributes['error'] FROM incidents FINAL").rows}
    assert rows["t1"][1:4] == (RULE_ERROR_ID, "_CrashesOn", [crash[0][0]["event_id"]])
    assert "ZeroDivisionError" in rows["t1"][5] and crash[0][0]["event_id"] in rows["t1"][4]
    assert rows["t2"][1] == RULE_FORBIDDEN_TOOL
    assert rows["t3"][1] == RULE_COST and len(rows["t3"][4]) < 5_000
    published = read_all(kafka, kafka.topics.incidents, expected=3, timeout=15, idle=3)
    assert len(published) == 3
    assert elapsed < BOUND_S


def test_a_dead_letter_the_broker_refuses_is_quarantined_and_the_sink_moves_on(
    poison_kafka, group_factory, store, tmp_path,
):
    """Attack: a message the broker refuses to dead-letter (here the dead-letter topic is one the broker
    refuses every write to: its name ``dlq/refused`` is invalid, TOPIC_EXCEPTION), in the middle of
    valid events: garbage ``b"not avro" + 64 KB``. Expected: after 3 tries the dead letter goes to
    the quarantine file with its reason, headers and payload; a metric and a log line say so; the sink
    moves on within the bound and stores every valid event once."""
    kafka = poison_kafka(dlq="dlq/refused")
    store_settings, client = store
    events = _valid_events()
    poison = b"not avro" + bytes(range(256)) * 256
    _publish(kafka, events, [poison])
    began = time.monotonic()
    settings = _sink_settings(group_factory(), tmp_path)
    with Sink(kafka, store_settings, settings) as sink:
        drain(sink, len(events) + 1, timeout=BOUND_S)
        quarantined = sink.metrics.registry.get_sample_value("agentaudit_sink_quarantined_total",
                                                             {"reason": "bad_magic"})
    elapsed = time.monotonic() - began
    _assert_stored_once(client, events)
    [line] = (tmp_path / "quarantine.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry["reason"] == "bad_magic" and "dlq/refused" in entry["delivery_error"]
    assert entry["headers"][REASON_HEADER] == "bad_magic" and int(entry["headers"][SOURCE_OFFSET_HEADER]) >= 0
    assert base64.b64decode(entry["value_b64"]) == poison
    assert quarantined == 1
    assert (tmp_path / "quarantine.jsonl").stat().st_mode & 0o777 == 0o600
    print(f"\n[quarantine] got past in {elapsed:.1f}s")
    assert elapsed < BOUND_S


@pytest.mark.skipif(not external_bootstrap(), reason="tansu ignores a topic's max.message.bytes; runs on Apache Kafka")
def test_a_dead_letter_refused_for_its_size_is_sent_shorter(poison_kafka, group_factory, store, tmp_path):
    """Attack: a 999 990-byte undecodable message (valid header and body, then incompressible bytes) while
    the dead-letter topic accepts only 100 000 bytes (``max.message.bytes``, lower than the sink's
    ``AGENTAUDIT_SINK_DLQ_MAX_BYTES``). Expected: the broker refuses the 1 MB and 250 KB tries
    (MSG_SIZE_TOO_LARGE); the third, a quarter as large again, is stored with the original size and
    SHA-256 in headers; nothing is quarantined; the valid events are all stored once."""
    kafka = poison_kafka(dlq_config={"max.message.bytes": "100000"})
    store_settings, client = store
    events = _valid_events()
    noise = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(999_990 // 32 + 1))
    poison = (events[0][1] + noise)[:999_990]
    _publish(kafka, events, [poison])
    began = time.monotonic()
    with Sink(kafka, store_settings, _sink_settings(group_factory(), tmp_path)) as sink:
        drain(sink, len(events) + 1, timeout=BOUND_S)
        quarantined = sink.metrics.registry.get_sample_value("agentaudit_sink_quarantined_total",
                                                             {"reason": "undecodable"})
    elapsed = time.monotonic() - began
    _assert_stored_once(client, events)
    [dead] = read_all(kafka, kafka.topics.dlq, expected=1, timeout=15, idle=3)
    headers = {k: v.decode() for k, v in dead.headers()}
    assert int(headers[ORIGINAL_SIZE_HEADER]) == 999_990
    assert headers[ORIGINAL_SHA256_HEADER] == hashlib.sha256(poison).hexdigest()
    assert poison.startswith(dead.value()) and 50_000 < len(dead.value()) < 62_500
    assert not quarantined and not (tmp_path / "quarantine.jsonl").exists()
    assert elapsed < BOUND_S


def test_a_valid_action_just_under_the_limit_does_not_halt_the_rules_worker(poison_kafka, group_factory):
    """Attack: a valid action of 999 953 bytes (a 999 KB attribute), under ``AGENTAUDIT_MAX_MESSAGE_BYTES``,
    then a 1 USD-over-the-ceiling event of another tenant. Before: ``rules run`` re-keys each action with a
    key and two headers, so the copy exceeded the producer's 1 000 000 bytes (MSG_SIZE_TOO_LARGE) and the
    worker stopped on it, again after every restart. Expected: both re-keyed and judged; the other
    tenant's incident is published."""
    kafka = poison_kafka()
    codec = AvroCodec("action")
    small = codec.encode(action_record(0, stream_id="s-1", tenant="t1"))
    big = codec.encode(action_record(1, stream_id="s-1", tenant="t1", attributes={"pad": "p" * (999_950 - len(small))}))
    other = codec.encode(action_record(2, stream_id="s-2", tenant="t2", cost_usd=2.0, kind="chat", name="gpt"))
    assert 999_900 < len(big) <= kafka.max_message_bytes and not codec.decode_batch([big])[2]
    with KafkaProducer(kafka, {"message.max.bytes": 2_000_000}) as producer:
        for value, key in ((big, b"s-1"), (small, b"s-1"), (other, b"s-2")):
            producer.produce(kafka.topics.actions, value, key=key)
    worker = RulesWorker(kafka, RuleEvaluator(load_rule_set(None)), group=group_factory(), batch_size=100,
                         consumer_config=test_consumer_config(**{"auto.offset.reset": "earliest"}))
    began = time.monotonic()
    moved = 0

    def raised() -> set[tuple[str, str]]:
        return {(i.rule_id, i.tenant) for i in worker.incidents.values()}

    try:
        while ((moved < 3 or worker.evaluated < 3 or ("cost.action-ceiling", "t2") not in raised())
               and time.monotonic() - began < BOUND_S):
            moved += worker.rekey_once(0.3)
            worker.judge_once(0.3)
    finally:
        worker.close()
    assert moved == 3 and worker.evaluated == 3
    assert ("cost.action-ceiling", "t2") in raised()


def test_forged_repartition_headers_do_not_halt_the_rules_worker(poison_kafka, group_factory):
    """Attack: anyone who can write the repartition topic sends copies whose headers the re-key loop never
    writes: a copy count that is not a number, a source topic that is not UTF-8, a marker whose event time is
    not a number. Before: ``judge_once`` raised ValueError on the first, and a restarted worker read it again,
    so ``rules run`` stopped for good. Expected: each is skipped with a warning, its offset is committed, and
    a valid over-the-ceiling event of another tenant is re-keyed and judged as usual."""
    kafka = poison_kafka()
    codec = AvroCodec("action")
    forged = codec.encode(action_record(0, stream_id="s-1", tenant="t1"))
    other = codec.encode(action_record(1, stream_id="s-2", tenant="t2", cost_usd=2.0, kind="chat", name="gpt"))
    source = [(SOURCE_TOPIC_HEADER, kafka.topics.actions.encode()), (SOURCE_PARTITION_HEADER, b"0")]
    with KafkaProducer(kafka) as producer:
        producer.produce(kafka.topics.repartition, forged, key=b"k", partition=0,
                         headers=[*source, (KEY_CLASS_HEADER, b"tenant"), (COPIES_HEADER, b"many")])
        producer.produce(kafka.topics.repartition, forged, key=b"k", partition=0,
                         headers=[(SOURCE_TOPIC_HEADER, b"\xff\xfe"), (SOURCE_PARTITION_HEADER, b"0")])
        producer.produce(kafka.topics.repartition, None, partition=0,
                         headers=[*source, (MARKER_HEADER, b"progress"), (EVENT_TIME_HEADER, b"soon")])
        producer.produce(kafka.topics.actions, other, key=b"s-2")
    worker = RulesWorker(kafka, RuleEvaluator(load_rule_set(None)), group=group_factory(), batch_size=100,
                         consumer_config=test_consumer_config(**{"auto.offset.reset": "earliest"}))
    began = time.monotonic()
    moved = 0
    try:
        while (("cost.action-ceiling", "t2") not in {(i.rule_id, i.tenant) for i in worker.incidents.values()}
               and time.monotonic() - began < BOUND_S):
            moved += worker.rekey_once(0.3)
            worker.judge_once(0.3)
    finally:
        worker.close()
    assert moved == 1 and worker.evaluated == 1  # the forged copies were not judged
    assert {(i.rule_id, i.tenant) for i in worker.incidents.values()} == {("cost.action-ceiling", "t2")}
