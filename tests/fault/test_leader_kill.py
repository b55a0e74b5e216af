"""Leader kill on a replicated cluster: SIGKILL the broker that leads an actions partition while
the SDK emits and the sink consumes, restart it, and nothing is lost, nothing is doubled, and the
incidents equal an uninterrupted run.

Two streams run through the cluster at once (topics with 3 replicas, ``min.insync.replicas=2``):

- **SDK**: one ``AuditClient`` emits ``SDK_EVENTS`` events of about 1 KB for four agents over 3
  partitions, paced so the kill lands mid-stream; one ``agentaudit consume`` stores them. Every
  action id the SDK returned is stored once, and the SDK reports each as delivered.
- **seeded simulator log** (``SIM_EVENTS``), produced in paced chunks by the infra producer (acks=all,
  idempotent with ``AGENTAUDIT_ENABLE_IDEMPOTENCE``) into one partition (the reference below judges the
  log in log order), consumed by a second ``agentaudit consume --state-dir``. Its incidents' digest must
  equal the in-process rule engine's over the same log: the uninterrupted run.

The killed broker leads the simulator's partition (and, with 3 partitions on 3 brokers, one SDK
partition). Runs only on the Apache Kafka tier with a cluster started by ``.ci/kafka/start.sh``
(``AGENTAUDIT_KAFKA_BROKERS=3``): it needs ``AGENTAUDIT_KAFKA_STATE`` to kill and restart a node.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaAdmin, KafkaConsumer, KafkaProducer
from agentaudit.producers import AuditClient
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.fault.support import (
    CLUSTER_REQUIRED,
    ConsumerProcess,
    cluster_node,
    cluster_size,
    count_final,
    duplicated_events,
    expected_incidents,
    simulated_log,
    stack_env,
    stored_incidents,
    wait_for_layout,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.broker, pytest.mark.slow]

SDK_EVENTS = int(os.environ.get("AGENTAUDIT_FAULT_LEADER_SDK_EVENTS", "4000"))
SIM_EVENTS = int(os.environ.get("AGENTAUDIT_FAULT_LEADER_SIM_EVENTS", "6000"))
DOWN_S = float(os.environ.get("AGENTAUDIT_FAULT_LEADER_DOWN_S", "12"))
SEED = 18
AGENTS = ("planner", "coder", "reviewer", "support")


def _digest(incidents: dict[str, int]) -> str:
    return hashlib.sha256(repr(sorted(incidents.items())).encode()).hexdigest()[:16]


@pytest.mark.skipif(cluster_size() < 3, reason=CLUSTER_REQUIRED)
def test_leader_sigkill_every_event_once_incidents_as_uninterrupted(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory,
    store_settings_factory: Callable[[], StoreSettings], tmp_path: Path,
):
    log = simulated_log(SEED, SIM_EVENTS)
    reference = expected_incidents(log)
    sdk_kafka = kafka_settings_factory(partitions=3)
    sim_kafka = kafka_settings_factory(partitions=1)
    admin = KafkaAdmin(sim_kafka)
    layout = wait_for_layout(admin, sim_kafka.topics.actions, 30)
    leader = layout[0][0]
    assert len(layout[0][1]) == 3, f"the actions topic should have 3 replicas: {layout}"
    sdk_layout = wait_for_layout(admin, sdk_kafka.topics.actions, 30)
    sdk_led = [p for p, (lead, _, _) in sdk_layout.items() if lead == leader]
    sdk_store, sim_store = store_settings_factory(), store_settings_factory()
    migrate(sdk_store)
    migrate(sim_store)
    sdk_group, sim_group = group_factory(), group_factory()
    sdk_consumer = ConsumerProcess(stack_env(sdk_kafka, sdk_store), ["--group", sdk_group], tmp_path / "sdk.log")
    sim_consumer = ConsumerProcess(stack_env(sim_kafka, sim_store),
                                   ["--group", sim_group, "--batch-size", "1000", "--state-dir", str(tmp_path / "st")],
                                   tmp_path / "sim.log")
    client = AuditClient(kafka=sdk_kafka, tenant="acme", agent=AGENTS[0], spool_dir=str(tmp_path / "spool"))
    emitted: list[str] = []
    produce_errors: list[object] = []
    padding = "x" * 900  # a real-size event: ~1 KB of attributes (prompt/tool digest, metadata)

    def emit() -> None:
        for i in range(SDK_EVENTS):
            emitted.append(client.event("tool_call", name=f"search-{i % 17}", agent=AGENTS[i % len(AGENTS)],
                                        attributes={"i": i, "query": padding, "step": i % 50}))
            time.sleep(0.004)  # ~250/s: the stream spans the kill

    def produce() -> None:
        def delivered(err: object, _msg: object) -> None:
            if err is not None:
                produce_errors.append(err)

        with KafkaProducer(sim_kafka, {"linger.ms": 20}) as producer:
            for start in range(0, len(log), 500):
                for key, value in log[start:start + 500]:
                    producer.produce(sim_kafka.topics.actions, value, key=key, on_delivery=delivered)
                producer.poll(0)
                time.sleep(0.8)
            producer.flush(120)

    emitter, producer = threading.Thread(target=emit), threading.Thread(target=produce)
    began = time.monotonic()
    try:
        sdk_consumer.start()
        sim_consumer.start()
        emitter.start()
        producer.start()
        time.sleep(4)
        at_kill = len(emitted)
        cluster_node("kill", leader)
        killed_at = time.monotonic()
        time.sleep(DOWN_S)
        during = len(emitted) - at_kill
        moved = admin.describe_partitions(sim_kafka.topics.actions)[0]
        cluster_node("start", leader)
        restart_s = time.monotonic() - killed_at
        emitter.join()
        producer.join()
        flushed = client.flush(120)
        stats = client.stats()
        with connect(sdk_store) as store:
            wait_until(lambda: count_final(store) >= len(emitted), 180, f"{len(emitted)} SDK events stored",
                       alive=[sdk_consumer])
            time.sleep(1)
            sdk_stored, sdk_dupes = count_final(store), duplicated_events(store)
            sdk_ids = [r[0] for r in store.query("SELECT action_id FROM actions FINAL").rows]
            sdk_raw = int(store.query("SELECT count() FROM actions").rows[0][0])
        with connect(sim_store) as store:
            wait_until(lambda: count_final(store) >= len(log), 180, f"{len(log)} simulator events stored",
                       alive=[sim_consumer])
            time.sleep(3)  # the last batch's watermark incidents
            sim_stored, sim_dupes = count_final(store), duplicated_events(store)
            incidents = stored_incidents(store)
        # the groups recovered: each committed up to the end of every partition
        with KafkaConsumer(sdk_kafka, group_factory()) as probe:
            ends = {**probe.high_watermarks([(sdk_kafka.topics.actions, p) for p in range(3)]),
                    **probe.high_watermarks([(sim_kafka.topics.actions, 0)])}

        def caught_up() -> bool:
            committed = {**admin.committed_offsets(sdk_group, [sdk_kafka.topics.actions]),
                         **admin.committed_offsets(sim_group, [sim_kafka.topics.actions])}
            return all(committed.get(tp) == end for tp, end in ends.items())

        wait_until(caught_up, 60, "both consumer groups committed to the end of every partition",
                   alive=[sdk_consumer, sim_consumer])
        after = admin.describe_partitions(sim_kafka.topics.actions)[0]
        wait_until(lambda: len(admin.describe_partitions(sim_kafka.topics.actions)[0][2]) == 3, 60,
                   "the restarted broker back in the ISR")
    finally:
        client.close()
        if emitter.is_alive():
            emitter.join()
        if producer.is_alive():
            producer.join()
        sdk_code, sim_code = sdk_consumer.stop(), sim_consumer.stop()
        cluster_node("start", leader)  # never leave the tier with a node down
    missing = len(set(emitted) - set(sdk_ids))
    print(f"\n[leader kill] injected: SIGKILL of broker {leader} (leader of the simulator partition and of SDK "
          f"partitions {sdk_led}), down {restart_s:.1f}s; {during} SDK events emitted while it was down; new "
          f"leader while down {moved[0]} (ISR {moved[2]}), after restart {after[0]}")
    print(f"[leader kill] SDK: emitted {len(emitted)}, delivered {stats['delivered']}, failed {stats['failed']}, "
          f"spooled {stats['spooled']}, replayed {stats['replayed']}, flushed {flushed}; stored FINAL {sdk_stored} "
          f"(raw rows {sdk_raw}), distinct ids {len(set(sdk_ids))}, missing {missing}, duplicated {sdk_dupes}")
    print(f"[leader kill] simulator: produced {len(log)}, errors {len(produce_errors)}, stored FINAL {sim_stored}, "
          f"duplicated {sim_dupes}; incidents {len(incidents)} digest {_digest(incidents)} vs uninterrupted "
          f"{len(reference)} digest {_digest(reference)}; whole test {time.monotonic() - began:.1f}s")
    assert sdk_code == 0 and sim_code == 0, (sdk_consumer.log()[-3000:], sim_consumer.log()[-3000:])
    assert moved[0] not in (-1, leader), f"no new leader while broker {leader} was down: {moved}"
    assert flushed and stats["failed"] == 0 and stats["delivered"] >= len(emitted)
    assert sdk_stored == len(emitted) == len(set(sdk_ids)) and missing == 0 and sdk_dupes == 0
    assert not produce_errors and sim_stored == len(log) and sim_dupes == 0
    assert _digest(incidents) == _digest(reference), (sorted(set(incidents.items()) ^ set(reference.items())))[:10]
