"""What the SDK drops is visible in the record: a sequence gap in the agent's stream, a counter on
the event after it, and the integrity pack's ``integrity.sequence-gap`` incident, end to end through
the real broker, the real sink and the real store. Two ways to drop: ``drop_oldest`` on a full
in-memory queue (events never sealed), and the default ``spool`` policy on a full disk spool
(sealed events) while the broker is stalled."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaAdmin
from agentaudit.producers import AuditClient
from agentaudit.producers._worker import DROPPED_ATTRIBUTE
from agentaudit.rules import DEFAULT_PACK, RuleEvaluator, load_rule_set
from agentaudit.settings import KafkaSettings, StoreSettings, TopicNames
from tests.sink_support import drain

pytestmark = [pytest.mark.integration]

GAP_RULE = "integrity.sequence-gap"


def _store_and_judge(kafka: KafkaSettings, store_settings: StoreSettings, group: str,
                     events: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Run the real sink with the integrity pack over the topic; ``(actions rows, gap incidents)``."""
    migrate(store_settings)
    evaluator = RuleEvaluator(load_rule_set(str(DEFAULT_PACK / "integrity.yaml")), lateness_us=0)
    settings = SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000, batch_timeout_ms=300)
    with Sink(kafka, store_settings, settings, evaluator) as sink:
        drain(sink, events, timeout=60)
    with connect(store_settings) as store:
        rows = store.query("SELECT stream_id, seq, attributes FROM actions FINAL ORDER BY stream_id, seq").rows
        incidents = store.query("SELECT rule_id, key, severity FROM incidents FINAL "
                                f"WHERE rule_id = '{GAP_RULE}'").rows
    return rows, incidents


def _gaps(rows: list[tuple[Any, ...]]) -> tuple[int, list[int]]:
    """``(events missing between stored seqs, dropped_before counters carried)``."""
    missing, counters = rows[0][1] if rows else 0, []
    for (stream, seq, attrs), (prev_stream, prev_seq, _) in zip(rows[1:], rows[:-1], strict=False):
        if stream == prev_stream:
            missing += seq - prev_seq - 1
        if DROPPED_ATTRIBUTE in dict(attrs):
            counters.append(int(dict(attrs)[DROPPED_ATTRIBUTE]))
    return missing, counters


@pytest.mark.broker
def test_drop_oldest_on_a_full_queue_leaves_a_gap_that_raises_the_integrity_incident(
        kafka_settings_factory: Callable[..., KafkaSettings], store_settings_factory: Callable[[], StoreSettings],
        group_factory: Callable[..., str], tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    audit = AuditClient(kafka=kafka, tenant="acme", agent="hasty", spool_dir=tmp_path, full_policy="drop_oldest",
                        queue_max_events=50)
    for i in range(5000):  # far faster than the worker seals: the queue drops its oldest
        audit.decision("step", attributes={"i": i, "pad": "p" * 300})
    assert audit.flush(60), audit.stats()
    audit.close()
    stats = audit.stats()
    dropped = stats["dropped_queue_full"]
    assert dropped > 0, stats
    rows, incidents = _store_and_judge(kafka, store_settings_factory(), group_factory(), stats["delivered"])
    missing, counters = _gaps(rows)
    print(f"\n[sdk drop_oldest] emitted 5000, dropped {dropped}, stored {len(rows)}, seq gaps cover {missing}, "
          f"{len(incidents)} {GAP_RULE} incident(s)")
    assert len(rows) == stats["sealed"]  # every sealed event stored (a quiet stream's gap marker included)
    assert missing == dropped and sum(counters) == dropped  # the gaps account for every drop
    assert incidents and {i[2] for i in incidents} == {"critical"}


@pytest.mark.fault
def test_a_full_spool_under_the_default_policy_leaves_a_gap_that_raises_the_integrity_incident(
        embedded_broker_factory: Callable[..., Any], store_settings_factory: Callable[[], StoreSettings],
        group_factory: Callable[..., str], tmp_path: Path) -> None:
    broker = embedded_broker_factory()
    prefix = f"gap-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap,
                          topics=TopicNames(**{n: f"{prefix}.{n}" for n in TopicNames.model_fields}))
    KafkaAdmin(kafka).ensure_topics(kafka.topics.model_dump().values(), partitions=1)
    audit = AuditClient(kafka=kafka, tenant="acme", agent="stalled", spool_dir=tmp_path, spool_max_bytes=64 * 1024,
                        spill_after_ms=200)
    audit.decision("before")
    assert audit.flush(30)
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        time.sleep(0.5)
        for i in range(2000):  # ~1.5 MB into a 64 KiB spool while the broker does not answer
            audit.decision("step", attributes={"i": i, "pad": "p" * 300})
            if i == 999:
                time.sleep(1.5)  # the broker looks away: events go to the spool, which fills
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    for i in range(10):
        audit.decision("after", attributes={"i": i})
    assert audit.flush(60), audit.stats()
    audit.close()
    stats = audit.stats()
    assert stats["dropped_spool_full"] > 0 and stats["dropped_queue_full"] == 0, stats
    rows, incidents = _store_and_judge(kafka, store_settings_factory(), group_factory(), stats["delivered"])
    missing, _counters = _gaps(rows)
    print(f"\n[sdk spool full] emitted 2011, dropped {stats['dropped_spool_full']} (spool full), stored {len(rows)}, "
          f"seq gaps cover {missing}, {len(incidents)} {GAP_RULE} incident(s)")
    assert missing == stats["dropped_spool_full"]
    assert incidents and {i[2] for i in incidents} == {"critical"}
