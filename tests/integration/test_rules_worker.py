"""Replay through a real broker: 1 or 3 rules workers in one group give byte-identical incidents."""

from __future__ import annotations

import hashlib
import time

import pytest

from agentaudit.consumers.rules_worker import RulesWorker, StateDirectory
from agentaudit.infra.kafka import KafkaConsumer, KafkaProducer
from agentaudit.rules import DEFAULT_LATENESS_US, RuleEvaluator, load_rule_set
from agentaudit.rules.settings import DEFAULT_IDLE_TIMEOUT_MS
from agentaudit.schemas import AvroCodec, Incident
from tests.fixtures.broker import test_consumer_config
from tests.synthetic_fleet import fleet_records

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.slow]

LATENESS_US = DEFAULT_LATENESS_US  # source watermarks: the re-key interleaving makes no event late
RULES = load_rule_set(None)
RECORDS = fleet_records(3000, agents=12, tenants=6, seed=5, pace=20)


def digest(incidents) -> str:
    return hashlib.sha256("\n".join(sorted(i.model_dump_json() for i in incidents)).encode()).hexdigest()


def produce_actions(kafka, records=RECORDS) -> None:
    codec = AvroCodec("action")
    with KafkaProducer(kafka) as producer:
        for r in records:
            record = {k: v for k, v in r.items() if k not in ("event_hash", "_partition", "_offset")}
            producer.produce(kafka.topics.actions, codec.encode(record), key=record["stream_id"].encode())
        producer.flush()


def published_incidents(kafka, group: str) -> list[Incident]:
    codec = AvroCodec("incident")
    latest: dict[str, Incident] = {}
    with KafkaConsumer(kafka, group, test_consumer_config(**{"auto.offset.reset": "earliest"})) as consumer:
        consumer.subscribe([kafka.topics.incidents])
        idle = 0
        while idle < 10:
            batch = consumer.consume_batch(1000, 0.5)
            idle = 0 if batch else idle + 1
            for message in batch:
                incident = Incident.from_avro(codec.decode(message.value()))
                current = latest.get(incident.incident_id)
                if current is None or incident.count >= current.count:
                    latest[incident.incident_id] = incident
    return list(latest.values())


def settle(workers: list[RulesWorker], partitions: int, timeout: float = 60) -> None:
    """Run the workers until every one holds partitions of both groups and together they hold them all, so
    that no partition moves once data flows."""
    deadline = time.monotonic() + timeout
    while True:
        for worker in workers:
            worker.run_once()
        held = [worker.assignment() for worker in workers]
        if all(rekey and judge for rekey, judge in held) and \
                sum(len(rekey) for rekey, _ in held) == partitions == sum(len(j) for _, j in held):
            return
        assert time.monotonic() < deadline, f"group did not settle: {held}"


def run_workers(kafka, instances: int, group: str) -> tuple[list[Incident], list[int]]:
    config = test_consumer_config(**{"auto.offset.reset": "earliest"})
    workers = [RulesWorker(kafka, RuleEvaluator(RULES, lateness_us=LATENESS_US), group=group, batch_size=500,
                           consumer_config=config) for _ in range(instances)]
    try:
        settle(workers, kafka.partitions)
        produce_actions(kafka)
        deadline = time.monotonic() + 120
        while sum(w.evaluated for w in workers) < len(RECORDS):
            for worker in workers:
                worker.run_once()
            assert time.monotonic() < deadline, f"evaluated {[w.evaluated for w in workers]} of {len(RECORDS)}"
        for worker in workers:
            worker.flush()  # the end of the replayed range: close every window
        return [i for w in workers for i in w.incidents.values()], [w.evaluated for w in workers]
    finally:
        for worker in workers:
            worker.close()


def test_one_or_three_workers_give_identical_incidents(kafka_settings_factory, group_factory) -> None:
    live = _live(RECORDS)
    expected = digest(live)
    runs = {}
    for instances in (1, 1, 3):
        kafka = kafka_settings_factory(partitions=3)
        incidents, spread = run_workers(kafka, instances, group_factory("rules"))
        if instances == 3:
            assert min(spread) > 0, f"one instance did nothing: {spread}"
        published = published_incidents(kafka, group_factory("read"))
        assert digest(published) == digest(incidents)
        runs.setdefault(instances, []).append(digest(incidents))
        if runs[instances][-1] != expected:
            pytest.fail(f"{instances} instance(s) differ from one evaluator over the log: {_differences(live, incidents)}")
    assert runs[1][0] == runs[1][1] == runs[3][0] == expected, (runs, expected)


def _differences(want_incidents, got_incidents) -> list[str]:
    """The incidents that differ, first ten: rule, count wanted and count got (None: missing)."""
    want = {i.incident_id: i for i in want_incidents}
    got = {i.incident_id: i for i in got_incidents}
    return [f"{(want.get(k) or got[k]).rule_id} want={want[k].count if k in want else None} "
            f"got={got[k].count if k in got else None}" for k in sorted(set(want) | set(got))
            if want.get(k) != got.get(k)][:10]


def _live(records) -> list[Incident]:
    """What one evaluator publishes over the whole log, ending with a flush."""
    evaluator = RuleEvaluator(RULES, lateness_us=LATENESS_US)
    latest: dict[str, Incident] = {}
    for start in range(0, len(records), 500):
        for incident in evaluator.evaluate(records[start:start + 500]):
            latest[incident.incident_id] = incident
    for incident in evaluator.flush():
        latest[incident.incident_id] = incident
    return list(latest.values())


@pytest.mark.parametrize("idle_timeout_ms", [DEFAULT_IDLE_TIMEOUT_MS, 50], ids=["default-idleness", "quick-idleness"])
def test_state_follows_a_partition_across_a_restart(kafka_settings_factory, group_factory, tmp_path,
                                                    idle_timeout_ms) -> None:
    """Half the log, stop (snapshots saved with offsets), a new worker does the rest: same incidents.

    With quick idleness the first worker marks sources idle once it has read them to the end (as a slow
    CI machine does with the default), and its snapshots keep them idle: the second worker must wake
    them before their new records are judged, or those records count as late.
    """
    kafka = kafka_settings_factory(partitions=3)
    group = group_factory("rules")
    state = StateDirectory(tmp_path / "state")
    config = test_consumer_config(**{"auto.offset.reset": "earliest"})
    half = len(RECORDS) // 2
    published: dict[str, Incident] = {}
    for part, records in enumerate((RECORDS[:half], RECORDS[half:])):
        worker = RulesWorker(kafka, RuleEvaluator(RULES, lateness_us=LATENESS_US), group=group, batch_size=300,
                             consumer_config=config, state=state, idle_timeout_ms=idle_timeout_ms)
        try:
            produce_actions(kafka, records)
            deadline = time.monotonic() + 90
            while worker.evaluated < len(records):
                worker.run_once()
                assert time.monotonic() < deadline, f"part {part}: evaluated {worker.evaluated} of {len(records)}"
            if part == 1:
                worker.flush()
            for incident in worker.incidents.values():
                current = published.get(incident.incident_id)
                if current is None or incident.count >= current.count:
                    published[incident.incident_id] = incident
        finally:
            worker.close()
        assert sorted(p.name for p in (tmp_path / "state" / group).iterdir()) == [
            f"{kafka.topics.repartition}-{p}.json" for p in range(3)]
    live = _live(RECORDS)
    assert digest(published.values()) == digest(live), _differences(live, published.values())
