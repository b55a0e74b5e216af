"""The sink under faults, on the real broker and store: a SIGKILL-like death between insert
and commit, and a store outage. Neither may lose an event nor show a duplicate under FINAL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.consumers.exceptions import ConsumerError
from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.embedded import ManagedProcess, free_port
from agentaudit.infra.kafka import KafkaAdmin, KafkaProducer
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.schemas import Incident
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.sink_support import drain, framed_events

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.fault]

REPO = Path(__file__).resolve().parents[2]

# The child is a real sink process whose test hook dies like SIGKILL (no cleanup, no commit)
# right after the batch is in the store.
_CHILD = textwrap.dedent(
    """
    import os
    from agentaudit.consumers.settings import SinkSettings
    from agentaudit.consumers.sink import Sink
    from agentaudit.settings import KafkaSettings, StoreSettings

    def crash(result):
        print(f"inserted {result.inserted}, dying before commit", flush=True)
        os._exit(137)

    Sink(KafkaSettings(), StoreSettings(), SinkSettings(), on_after_insert=crash).run()
    """
)


def _sink_env(kafka: KafkaSettings, store: StoreSettings, group: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AGENTAUDIT_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        AGENTAUDIT_CLICKHOUSE_URL=store.clickhouse_url,
        AGENTAUDIT_DATABASE=store.database,
        AGENTAUDIT_SINK_GROUP=group,
        AGENTAUDIT_SINK_SESSION_TIMEOUT_MS="6000",
        AGENTAUDIT_SINK_HEARTBEAT_INTERVAL_MS="1000",
        AGENTAUDIT_SINK_BATCH_TIMEOUT_MS="1500",
        PYTHONPATH=str(REPO),
    )
    for name, topic in kafka.topics.model_dump().items():
        env[f"AGENTAUDIT_TOPIC_{name.upper()}"] = topic
    return env


def _duplicates(store) -> int:
    return store.query(
        "SELECT count() FROM (SELECT event_id FROM actions FINAL GROUP BY event_id HAVING count() > 1)"
    ).rows[0][0]


def test_crash_between_insert_and_commit_leaves_no_duplicates(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, store_settings_factory
):
    kafka = kafka_settings_factory(partitions=2)
    store_settings = store_settings_factory()
    migrate(store_settings)
    group = group_factory()
    events = framed_events(300, stream_id="s-1") + framed_events(300, stream_id="s-2")
    with KafkaProducer(kafka) as producer:
        for record, data in events:
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())

    child = subprocess.run([sys.executable, "-c", _CHILD], env=_sink_env(kafka, store_settings, group),
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == 137, child.stderr[-2000:]
    assert "dying before commit" in child.stdout
    with connect(store_settings) as store:
        before = store.query("SELECT count() FROM actions").rows[0][0]
        assert before > 0  # the batch really reached the store before the death
        committed = KafkaAdmin(kafka).committed_offsets(group, [kafka.topics.actions])
        assert all(offset is None or offset <= 0 for offset in committed.values()), committed

        settings = SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000, batch_timeout_ms=500)
        with Sink(kafka, store_settings, settings) as sink:
            drain(sink, len(events))
        assert store.query("SELECT count() FROM actions FINAL").rows[0][0] == len(events)
        assert _duplicates(store) == 0
        print(f"rows before restart {before}, raw rows after {store.query('SELECT count() FROM actions').rows[0][0]}")


def test_store_outage_blocks_commits_then_resumes_without_loss(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, tmp_path: Path
):
    port = free_port()
    server = ManagedProcess(
        "store", [sys.executable, "-m", "agentaudit.infra.store", "--data-dir", str(tmp_path / "data"),
                  "--port", str(port)], log_path=tmp_path / "store.log", ready_port=port)
    server.start()
    try:
        store_settings = StoreSettings(clickhouse_url=f"http://127.0.0.1:{port}", database="outage")
        migrate(store_settings)
        kafka = kafka_settings_factory(partitions=1)
        first, second = framed_events(100, stream_id="before"), framed_events(150, stream_id="during")

        def produce(events) -> None:
            with KafkaProducer(kafka) as producer:
                for record, data in events:
                    producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())

        def committed() -> int | None:
            return KafkaAdmin(kafka).committed_offsets(group, [kafka.topics.actions])[(kafka.topics.actions, 0)]

        group = group_factory()
        settings = SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000,
                                batch_timeout_ms=300, retry_initial_s=0.2, retry_max_s=0.8)
        with Sink(kafka, store_settings, settings) as sink:
            produce(first)
            drain(sink, len(first))
            assert committed() == len(first)

            server.stop()
            produce(second)
            retries = 0
            deadline = time.monotonic() + 20
            while retries < 4 and time.monotonic() < deadline:
                result = sink.run_once()
                retries += result.retried
                assert not result.committed
            assert retries == 4, "the sink kept retrying while the store was down"
            assert committed() == len(first)  # nothing was committed past the stored rows
            assert sink.metrics.registry.get_sample_value("agentaudit_sink_retries_total") == 4

            server.start()
            drain(sink, len(second))
            assert committed() == len(first) + len(second)
        with connect(store_settings) as store:
            assert store.query("SELECT count() FROM actions FINAL").rows[0][0] == len(first) + len(second)
            assert _duplicates(store) == 0
    finally:
        server.stop()


def test_rebalance_between_two_sinks_loses_and_duplicates_nothing(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, store_settings_factory,
    caplog: pytest.LogCaptureFixture,
):
    kafka = kafka_settings_factory(partitions=4)
    store_settings = store_settings_factory()
    migrate(store_settings)
    group = group_factory()
    waves = [framed_events(200, stream_id=f"wave{w}-{s}") for w in range(3) for s in range(2)]
    total = sum(len(w) for w in waves)

    def produce(events) -> None:
        with KafkaProducer(kafka) as producer:
            for record, data in events:
                producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())

    def settings() -> SinkSettings:
        return SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000,
                            batch_timeout_ms=200, batch_size=50)

    stops = [threading.Event(), threading.Event()]
    sinks = [Sink(kafka, store_settings, settings()), Sink(kafka, store_settings, settings())]
    threads = [threading.Thread(target=sink.run, args=(stop,), daemon=True) for sink, stop in zip(sinks, stops, strict=False)]
    with connect(store_settings) as store:
        def stored() -> int:
            return store.query("SELECT count() FROM actions FINAL").rows[0][0]

        def wait_for(count: int, timeout: float = 30) -> None:
            deadline = time.monotonic() + timeout
            while stored() < count and time.monotonic() < deadline:
                time.sleep(0.2)

        try:
            produce(waves[0] + waves[1])
            threads[0].start()
            wait_for(1)
            threads[1].start()  # joins mid-stream: the group rebalances while sink 0 works
            produce(waves[2] + waves[3])
            wait_for(len(waves[0]) * 4)
            # Both own partitions before sink 0 leaves (tansu stalls a group whose member leaves
            # in the middle of a rebalance; Apache Kafka does not).
            deadline = time.monotonic() + 20
            while not all(s.assignment for s in sinks) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert all(s.assignment for s in sinks), "the second sink never got partitions"
            assert not sinks[0].assignment & sinks[1].assignment
            # inline rules over part of the partitions: each sink says so once, naming the scale-out shape
            # (logged from the sinks' threads after a metadata request, so it may trail the assignment)
            def partial_warnings() -> list[str]:
                return [r.getMessage() for r in caplog.records if "sink.partial_assignment" in r.getMessage()]

            deadline = time.monotonic() + 15
            while not partial_warnings() and time.monotonic() < deadline:
                time.sleep(0.1)
            partial = partial_warnings()
            assert partial and all("consume --no-rules" in m and "rules run" in m for m in partial), partial
            stops[0].set()  # sink 0 leaves: its partitions move to sink 1
            threads[0].join(20)
            produce(waves[4] + waves[5])
            wait_for(total)
        finally:
            for stop in stops:
                stop.set()
            for thread in threads:
                thread.join(20)
        assert not any(thread.is_alive() for thread in threads)
        assert stored() == total
        assert _duplicates(store) == 0
        committed = KafkaAdmin(kafka).committed_offsets(group, [kafka.topics.actions])
        assert sum(offset or 0 for offset in committed.values()) == total
        assert all(s.metrics.registry.get_sample_value("agentaudit_sink_events_out_total") > 0 for s in sinks)


class _CountingEvaluator(BaseEvaluator):
    """Opens one incident per event and remembers every event it was shown."""

    revision = "counting"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def evaluate(self, records):
        self.seen.extend(r["event_id"] for r in records)
        return [Incident(incident_id=f"inc-{r['event_id']}", tenant=r["tenant"], rule_id="count", rule_revision="1",
                         event_ids=(r["event_id"],), first_seen_us=r["event_time_us"], last_seen_us=r["event_time_us"])
                for r in records]


def test_retried_batch_is_not_judged_twice_and_its_incidents_still_land(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, store_settings_factory
):
    kafka = kafka_settings_factory(partitions=1)
    store_settings = store_settings_factory()
    migrate(store_settings)
    events = framed_events(40)
    with KafkaProducer(kafka) as producer:
        for record, data in events:
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())
    failures = [ConsumerError("injected: incidents topic unavailable")]

    def fail_once(_result) -> None:
        if failures:
            raise failures.pop()

    evaluator = _CountingEvaluator()
    settings = SinkSettings(group=group_factory(), session_timeout_ms=6000, heartbeat_interval_ms=1000,
                            batch_timeout_ms=500, retry_initial_s=0.1)
    with Sink(kafka, store_settings, settings, evaluator, on_after_insert=fail_once) as sink:
        drain(sink, len(events))
        assert sink.metrics.registry.get_sample_value("agentaudit_sink_retries_total") == 1
    assert sorted(evaluator.seen) == sorted(r["event_id"] for r, _ in events)  # each event judged once
    with connect(store_settings) as store:
        assert store.query("SELECT count() FROM incidents FINAL").rows[0][0] == len(events)
        assert store.query("SELECT count() FROM actions FINAL").rows[0][0] == len(events)
