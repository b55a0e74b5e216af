"""Scale-out: the same seeded log gives the same incidents whether 1 or 3 instances share each group
(sorted incident ids, and a hash of the sorted incident rows without ingestion times).

Two checks:

- the rules workers alone (``agentaudit rules run``, which copies each action once per key class of
  the rules that need it before judging, so each rule key is judged in one place): the incidents they
  publish, read from the topic;
- the scale-out deployment end to end: N x ``agentaudit consume --no-rules`` (store only, and store
  the incidents topic) + N x ``agentaudit rules run``, N = 1 and N = 3, each over its own copy of the
  log and its own database: the ``incidents FINAL`` rows and the stored action counts must match.

Source-partition watermarks (agentaudit/rules/worker.py) make the rules workers independent of the
interleaving. ``agentaudit consume`` with inline rules is not checked here: it judges only the
partitions it was assigned, so it is the single-process shape and warns when it shares a group.
``AGENTAUDIT_FAULT_SCALE_EVENTS`` (default 6 000) simulator events over 6 partitions.
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
from agentaudit.rules import KeyRouter, load_rule_set
from agentaudit.schemas import AvroCodec
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.fault.support import ConsumerProcess, count_final, produce_all, simulated_log, stack_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

SCALE_EVENTS = int(os.environ.get("AGENTAUDIT_FAULT_SCALE_EVENTS", "6000"))
SEED = 23
PARTITIONS = 6


def copies_of(messages: tuple[tuple[bytes, bytes], ...]) -> int:
    """How many copies ``rules run`` (the default pack) writes to the repartition topic for ``messages``."""
    codec, router = AvroCodec("action"), KeyRouter(load_rule_set(None))
    return sum(len(router.route(codec.decode(value))) for _key, value in messages)


def digest(rows: list[tuple]) -> str:
    return hashlib.sha256("\n".join(repr(r) for r in sorted(rows)).encode()).hexdigest()[:16]


def run_rules_workers(kafka: KafkaSettings, group: str, processes: int, tmp_path: Path) -> tuple[dict, str, float]:
    """``processes`` x ``agentaudit rules run`` in one group until the log is judged; (id -> count, digest, s)."""
    # No watermark markers (idle timeout 0): the runs stop once the committed offsets reach the event count,
    # which markers would reach early; idleness is tested in tests/integration/test_rules_worker_idle.py.
    env = stack_env(kafka, StoreSettings(clickhouse_url="http://127.0.0.1:9", database="unused"),
                    AGENTAUDIT_RULES_IDLE_TIMEOUT_MS="0")
    workers = []
    began = time.monotonic()
    for i in range(processes):
        workers.append(ConsumerProcess(env, ["--group", group], tmp_path / f"rules-{group}-{i}.log",
                                       command=("rules", "run")))
    try:
        for w in workers:
            w.start()
        admin = KafkaAdmin(kafka)

        copies = copies_of(simulated_log(SEED, SCALE_EVENTS))  # no markers: the repartition offsets count copies

        def judged() -> int:
            offsets = admin.committed_offsets(group, [kafka.topics.repartition])
            return sum(o or 0 for o in offsets.values())
        wait_until(lambda: judged() >= copies, 180, f"{SCALE_EVENTS} events ({copies} copies) judged",
                   alive=workers)
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


def run_deployment(kafka: KafkaSettings, store: StoreSettings, processes: int,
                   tmp_path: Path) -> tuple[dict, str, float, int, dict]:
    """``processes`` x ``consume --no-rules`` + ``processes`` x ``rules run`` until every event is stored,
    judged, and every published incident is stored.

    Returns (id -> count in ``incidents FINAL``, digest of those rows, seconds, actions stored,
    id -> highest count published on the incidents topic).
    """
    env = stack_env(kafka, store, AGENTAUDIT_RULES_IDLE_TIMEOUT_MS="0")  # as in run_rules_workers
    tag = f"{processes}x-{kafka.topics.actions}"
    sink_group, rules_group = f"sink-{tag}", f"rules-{tag}"
    sinks = [ConsumerProcess(env, ["--no-rules", "--group", sink_group, "--batch-size", "1000"],
                             tmp_path / f"sink-{processes}x-{i}.log") for i in range(processes)]
    workers = [ConsumerProcess(env, ["--group", rules_group], tmp_path / f"rules-{processes}x-{i}.log",
                               command=("rules", "run")) for i in range(processes)]
    admin = KafkaAdmin(kafka)

    def committed(group: str, topic: str) -> dict[int, int]:
        return {p: o or 0 for (_, p), o in admin.committed_offsets(group, [topic]).items()}

    began = time.monotonic()
    with connect(store) as client:
        try:
            for p in sinks + workers:
                p.start()
            everyone = sinks + workers
            copies = copies_of(simulated_log(SEED, SCALE_EVENTS))  # no markers: the offsets count copies
            wait_until(lambda: sum(committed(rules_group, kafka.topics.repartition).values()) >= copies,
                       180, f"{SCALE_EVENTS} events ({copies} copies) judged", alive=everyone)
            for w in workers:  # nothing more is published once they are gone
                w.stop()
            published = read_all(kafka, kafka.topics.incidents, timeout=30, idle=2)
            ends: dict[int, int] = {}
            for m in published:
                ends[m.partition()] = max(ends.get(m.partition(), 0), m.offset() + 1)

            def stored_all() -> bool:
                done = committed(sink_group, kafka.topics.incidents)
                return (all(done.get(p, 0) >= end for p, end in ends.items())
                        and count_final(client) >= SCALE_EVENTS)
            wait_until(stored_all, 120, f"{len(published)} published incidents and {SCALE_EVENTS} events stored",
                       alive=sinks)
        finally:
            for p in sinks + workers:
                p.stop()
        actions = count_final(client)
        columns = [c for c in client.query("SELECT * FROM incidents LIMIT 0").column_names if c != "ingested_at"]
        rows = client.query(f"SELECT {', '.join(columns)} FROM incidents FINAL").rows
    took = time.monotonic() - began
    codec = AvroCodec("incident")
    on_topic: dict[str, int] = {}
    for m in published:
        record = codec.decode(m.value())
        on_topic[record["incident_id"]] = max(on_topic.get(record["incident_id"], 0), record["count"])
    counts = {r[0]: int(r[columns.index("count")]) for r in rows}
    return counts, digest([tuple(repr(v) for v in r) for r in rows]), took, actions, on_topic


@pytest.fixture
def seeded_log(kafka_settings_factory: Callable[..., KafkaSettings]) -> KafkaSettings:
    kafka = kafka_settings_factory(partitions=PARTITIONS)
    produce_all(kafka, kafka.topics.actions, simulated_log(SEED, SCALE_EVENTS))
    return kafka


def _report(what: str, one: tuple[dict, str, float], three: tuple[dict, str, float],
            sizes: tuple[str, str] = ("1 process", "3 processes")) -> None:
    print(f"\n[scale-out {what}] injected: the same {SCALE_EVENTS}-event seeded log, {PARTITIONS} partitions, "
          f"judged by {sizes[0]} then by {sizes[1]}")
    print(f"[scale-out {what}] counted: {sizes[0]} {len(one[0])} incidents digest {one[1]} in {one[2]:.1f}s; "
          f"{sizes[1]} {len(three[0])} incidents digest {three[1]} in {three[2]:.1f}s; ids only in 1: "
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
    # source-partition watermarks (agentaudit/rules/worker.py): no event is late, whatever the interleaving
    assert sorted(one[0]) == sorted(three[0]), (one[0].keys() ^ three[0].keys())
    assert one[1] == three[1], "same incident ids, but their rows differ between 1 and 3 processes"


def test_scale_out_deployment_three_of_each_stores_same_incidents_as_one_of_each(
    kafka_settings_factory: Callable[..., KafkaSettings], store_settings_factory: Callable[[], StoreSettings],
    tmp_path: Path,
):
    runs = []
    for processes in (1, 3):
        kafka = kafka_settings_factory(partitions=PARTITIONS)  # own topics: own repartition and incidents
        produce_all(kafka, kafka.topics.actions, simulated_log(SEED, SCALE_EVENTS))
        store = store_settings_factory()
        migrate(store)
        runs.append(run_deployment(kafka, store, processes, tmp_path))
    one, three = runs
    _report("consume --no-rules + rules run", one[:3], three[:3], ("1 of each", "3 of each (own groups)"))
    print(f"[scale-out consume --no-rules + rules run] actions stored: 1 of each {one[3]}, 3 of each {three[3]}")
    assert one[0], "the log raised no incident at all"
    assert one[3] == three[3] == SCALE_EVENTS
    for counts, _, _, _, on_topic in runs:  # the store holds every published incident at its highest count
        assert counts == on_topic
    assert sorted(one[0]) == sorted(three[0]), (one[0].keys() ^ three[0].keys())
    assert one[1] == three[1], "same incident ids, but their stored rows differ between 1 and 3 of each"
