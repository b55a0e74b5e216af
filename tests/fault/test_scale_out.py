"""Scale-out: a consumer group of 3 processes gives the same incidents as 1 process over the
same seeded log (sorted incident ids, and a hash of the sorted incident rows without ingestion
times).

Two consumers are checked: the rules worker (``agentaudit rules run``, which re-keys actions by
tenant before judging, so each tenant is judged in one place) and the sink with inline rules
(``agentaudit consume``, which judges whatever partitions it was assigned, in the order they
arrive). The rules workers must agree exactly (source-partition watermarks make them
independent of the interleaving); where the sinks differ the test reports an xfail with the
measured difference instead of failing, a known limit of ``agentaudit consume``.
``SCALE_EVENTS`` (default 6 000) simulator events over 6 partitions.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaAdmin
from agentaudit.infra.kafka.reading import read_all
from agentaudit.schemas import AvroCodec
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.fault.support import ConsumerProcess, count_final, produce_all, simulated_log, stack_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

SCALE_EVENTS = int(os.environ.get("AGENTAUDIT_FAULT_SCALE_EVENTS", "6000"))
SEED = 23
PARTITIONS = 6


def digest(rows: list[tuple]) -> str:
    return hashlib.sha256("\n".join(repr(r) for r in sorted(rows)).encode()).hexdigest()[:16]


def run_rules_workers(kafka: KafkaSettings, group: str, processes: int, tmp_path: Path) -> tuple[dict, str, float]:
    """``processes`` x ``agentaudit rules run`` in one group until the log is judged; (id -> count, digest, s)."""
    env = stack_env(kafka, StoreSettings(clickhouse_url="http://127.0.0.1:9", database="unused"))
    workers = []
    began = time.monotonic()
    for i in range(processes):
        workers.append(ConsumerProcess(env, ["--group", group], tmp_path / f"rules-{group}-{i}.log",
                                       command=("rules", "run")))
    try:
        for w in workers:
            w.start()
        admin = KafkaAdmin(kafka)

        def judged() -> int:
            offsets = admin.committed_offsets(group, [kafka.topics.repartition])
            return sum(o or 0 for o in offsets.values())
        wait_until(lambda: judged() >= SCALE_EVENTS, 180, f"{SCALE_EVENTS} events judged", alive=workers)
    finally:
        for w in workers:
            w.stop()
    took = time.monotonic() - began
    codec = AvroCodec("incident")
    latest: dict[str, dict] = {}
    for m in read_all(kafka, kafka.topics.incidents, timeout=30, idle=2):
        record = codec.decode(m.value())
        if record["incident_id"] not in latest or record["count"] >= latest[record["incident_id"]]["count"]:
            latest[record["incident_id"]] = record
    rows = [tuple(sorted((k, repr(v)) for k, v in r.items())) for r in latest.values()]
    return {i: r["count"] for i, r in latest.items()}, digest(rows), took


def run_sinks(kafka: KafkaSettings, store: StoreSettings, group: str, processes: int,
              tmp_path: Path) -> tuple[dict, str, float]:
    """``processes`` x ``agentaudit consume`` in one group until every event is stored."""
    env = stack_env(kafka, store)
    sinks = [ConsumerProcess(env, ["--group", group, "--batch-size", "1000"], tmp_path / f"sink-{group}-{i}.log")
             for i in range(processes)]
    began = time.monotonic()
    with connect(store) as client:
        try:
            for s in sinks:
                s.start()
            wait_until(lambda: count_final(client) >= SCALE_EVENTS, 180, f"{SCALE_EVENTS} events stored", alive=sinks)
            time.sleep(2)
        finally:
            for s in sinks:
                s.stop()
        columns = [c for c in client.query("SELECT * FROM incidents LIMIT 0").column_names if c != "ingested_at"]
        rows = client.query(f"SELECT {', '.join(columns)} FROM incidents FINAL").rows
    took = time.monotonic() - began
    counts = {r[0]: int(r[columns.index("count")]) for r in rows}
    return counts, digest([tuple(repr(v) for v in r) for r in rows]), took


@pytest.fixture
def seeded_log(kafka_settings_factory: Callable[..., KafkaSettings]) -> KafkaSettings:
    kafka = kafka_settings_factory(partitions=PARTITIONS)
    produce_all(kafka, kafka.topics.actions, simulated_log(SEED, SCALE_EVENTS))
    return kafka


def _report(what: str, one: tuple[dict, str, float], three: tuple[dict, str, float]) -> None:
    print(f"\n[scale-out {what}] injected: the same {SCALE_EVENTS}-event seeded log, {PARTITIONS} partitions, "
          f"judged by 1 process then by a group of 3")
    print(f"[scale-out {what}] counted: 1 process {len(one[0])} incidents digest {one[1]} in {one[2]:.1f}s; "
          f"3 processes {len(three[0])} incidents digest {three[1]} in {three[2]:.1f}s; ids only in 1: "
          f"{len(one[0].keys() - three[0].keys())}, only in 3: {len(three[0].keys() - one[0].keys())}")


def test_rules_workers_three_processes_same_incidents_as_one(
    seeded_log: KafkaSettings, kafka_settings_factory: Callable[..., KafkaSettings], group_factory, tmp_path: Path,
):
    one = run_rules_workers(seeded_log, group_factory(), 1, tmp_path)
    # a second copy of the log, so the group of 3 publishes into an incidents topic of its own
    other = kafka_settings_factory(partitions=PARTITIONS)
    produce_all(other, other.topics.actions, simulated_log(SEED, SCALE_EVENTS))
    three = run_rules_workers(other, group_factory(), 3, tmp_path)
    _report("rules run", one, three)
    assert one[0], "the log raised no incident at all"
    # source-partition watermarks (consumers/rules/worker.py): no event is late, whatever the interleaving
    assert sorted(one[0]) == sorted(three[0]), (one[0].keys() ^ three[0].keys())
    assert one[1] == three[1], "same incident ids, but their rows differ between 1 and 3 processes"


def test_sinks_three_processes_same_incidents_as_one(
    seeded_log: KafkaSettings, group_factory, store_settings_factory: Callable[[], StoreSettings], tmp_path: Path,
):
    first, second = store_settings_factory(), store_settings_factory()
    migrate(first)
    migrate(second)
    one = run_sinks(seeded_log, first, group_factory(), 1, tmp_path)
    three = run_sinks(seeded_log, second, group_factory(), 3, tmp_path)
    _report("consume", one, three)
    assert one[0], "the log raised no incident at all"
    if sorted(one[0]) != sorted(three[0]) or one[1] != three[1]:
        pytest.xfail("agentaudit consume judges each process's own partitions in arrival order, so a group of 3 "
                     "differs from 1 process; `agentaudit rules run` (re-keyed by tenant) is the scale-out path")
