"""End to end: agent steps per second from the SDK until they are queryable in the store, beside a raw Kafka
loop over the same broker and Arize Phoenix on the same workload, all in one run.

- agentaudit: an :class:`~agentaudit.producers.AuditClient` records runs of agent steps (``_agent_workload``:
  an ``invoke_agent`` with two ``chat`` and five ``execute_tool`` steps, each an action of two events) on an
  embedded tansu broker; ``agentaudit consume`` (its own process, the shipped rule pack inline) stores them.
  Timed from the first step until ``SELECT count() FROM actions`` shows every event.
- raw loop, the baseline: the very messages the SDK wrote (same number, keys and bytes), produced to a fresh
  topic on the same broker by a plain producer and read by a plain consumer that decodes nothing; timed from
  the first produce until the consumer holds them all. Its figure is in steps (messages / 2).
- Phoenix (the ``peer`` extra): the same runs as OpenTelemetry GenAI spans through the stock
  ``BatchSpanProcessor`` and OTLP/HTTP exporter to ``phoenix serve`` on SQLite, timed until its GraphQL API
  counts every span (``_phoenix``). Without the extra its row says how to install it; the rest still runs.

agentaudit and the raw loop alternate ``AGENTAUDIT_BENCH_E2E_ROUNDS`` times (default 2) and the best of each
is kept: on a shared machine other load only slows a run down. ``python -m benchmarks e2e``
(``AGENTAUDIT_BENCH_E2E_STEPS`` sets the steps, default 4000).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.kafka import KafkaAdmin, KafkaConsumer, KafkaProducer
from agentaudit.producers import AuditClient
from agentaudit.settings import KafkaSettings
from benchmarks import _phoenix
from benchmarks._agent_workload import RUN_STEPS, agent_runs, record_sdk
from benchmarks._stack import FAST_GROUP, embedded_stack, wait_for

EVENTS_PER_STEP = 2  # an action is a start and an end event
RAW_BATCH = 10_000


def _stored(store: Store) -> int:
    return int(store.query("SELECT count() FROM actions").rows[0][0])


def _agentaudit(store: Store, audit: AuditClient, steps: int) -> float:
    """Steps/s from the first step until the store counts every event of them."""
    runs = agent_runs(steps)
    target = _stored(store) + EVENTS_PER_STEP * steps
    began = time.perf_counter()
    record_sdk(audit, runs)
    assert audit.flush(300), audit.stats()
    wait_for(lambda: _stored(store) >= target, 300, f"{target} events in the store", poll=0.05)
    return steps / (time.perf_counter() - began)


def _written(kafka: KafkaSettings, total: int) -> list[tuple[bytes | None, bytes]]:
    """``(key, value)`` of the first ``total`` messages on the actions topic (what the SDK wrote), read untimed."""
    out: list[tuple[bytes | None, bytes]] = []
    with KafkaConsumer(kafka, f"bench-e2e-read-{uuid.uuid4().hex[:8]}",
                       {**FAST_GROUP, "auto.offset.reset": "earliest"}) as consumer:
        consumer.subscribe([kafka.topics.actions])
        deadline = time.monotonic() + 120
        while len(out) < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(out)} of {total} messages back from {kafka.topics.actions}")
            out.extend((m.key(), m.value()) for m in consumer.consume_batch(RAW_BATCH, timeout=1.0))
    return out[:total]


def _raw(kafka: KafkaSettings, warm_up: list[tuple[bytes | None, bytes]],
         messages: list[tuple[bytes | None, bytes]]) -> float:
    """Steps/s of a plain produce + consume loop (no decode) over ``messages``, on a fresh topic."""
    topic = f"{kafka.topics.actions}.raw-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdmin(kafka)
    admin.ensure_topics([topic], partitions=len(admin.partitions_for(kafka.topics.actions)))
    seen = [0]
    done, stop = threading.Event(), threading.Event()
    target = len(warm_up) + len(messages)
    consumer = KafkaConsumer(kafka, f"bench-e2e-raw-{uuid.uuid4().hex[:8]}",
                             {**FAST_GROUP, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10})
    consumer.subscribe([topic])

    def read() -> None:
        while seen[0] < target and not stop.is_set():
            seen[0] += len(consumer.consume_batch(RAW_BATCH, timeout=0.05))
        done.set()

    reader = threading.Thread(target=read, name="raw-consumer", daemon=True)
    reader.start()
    try:
        # the SDK's own linger; the broker confirms every message, as the SDK waits for it to
        with KafkaProducer(kafka, {"linger.ms": 5, "acks": "all"}) as producer:
            for key, value in warm_up:  # topic, group join and first fetch are not throughput
                producer.produce(topic, value, key=key)
            producer.flush()
            wait_for(lambda: seen[0] >= len(warm_up), 60, "the raw consumer's warm-up", poll=0.02)
            began = time.perf_counter()
            for key, value in messages:
                producer.produce(topic, value, key=key)
            producer.flush()
            if not done.wait(300):
                raise TimeoutError(f"raw consumer saw {seen[0]} of {target} messages")
            elapsed = time.perf_counter() - began
    finally:
        stop.set()  # a failed run ends the reader before its consumer is closed
        reader.join(5)
        consumer.close()
    return len(messages) / EVENTS_PER_STEP / elapsed


def _phoenix_rate(steps: int) -> float:
    with tempfile.TemporaryDirectory(prefix="agentaudit-phoenix-") as work, \
            _phoenix.phoenix_server(Path(work)) as url:
        rate, _ = _phoenix.spans_per_second(url, agent_runs(RUN_STEPS), agent_runs(steps))
    return rate


def run() -> list[dict]:
    steps = int(os.environ.get("AGENTAUDIT_BENCH_E2E_STEPS", "4000"))
    steps -= steps % RUN_STEPS
    rounds = int(os.environ.get("AGENTAUDIT_BENCH_E2E_ROUNDS", "2"))
    ours: list[float] = []
    raws: list[float] = []
    with embedded_stack(partitions=3) as stack, connect(stack.store) as store:
        audit = AuditClient(kafka=stack.kafka, tenant="bench", agent="bench-bot", spool_dir=str(stack.work / "spool"))
        try:
            with stack.consumer():  # the shipped rule pack, inline, as `agentaudit up` runs it
                record_sdk(audit, agent_runs(RUN_STEPS))  # warm-up: topic, producer, group join, first insert
                audit.flush(60)
                warm = EVENTS_PER_STEP * RUN_STEPS
                wait_for(lambda: _stored(store) >= warm, 180, "the consumer to store the warm-up run")
                written = None
                for _ in range(rounds):
                    ours.append(_agentaudit(store, audit, steps))
                    if written is None:  # the raw loop sends exactly what the SDK wrote in the first round
                        written = _written(stack.kafka, warm + EVENTS_PER_STEP * steps)
                    raws.append(_raw(stack.kafka, written[:warm], written[warm:warm + EVENTS_PER_STEP * steps]))
        finally:
            audit.close()
    best, raw = max(ours), max(raws)
    rows: list[dict] = [{
        "name": f"end-to-end agent steps/s ({steps:,} steps, SDK -> tansu -> consume, rule pack -> queryable, "
                f"best of {rounds})",
        "value": best, "unit": "steps/s", "baseline": raw,
        "baseline_name": "raw produce+consume of the same messages, no decode, same broker",
        "ratio": best / raw, "goal": "ratio >= 0.5"}]
    if not _phoenix.available():
        print(f"Arize Phoenix: {_phoenix.SKIPPED}", flush=True)
        rows.append({"name": f"Arize Phoenix: {_phoenix.SKIPPED}", "value": None, "unit": ""})
        return rows
    peer = _phoenix_rate(steps)
    rows.append({"name": f"end-to-end agent steps/s beside Arize Phoenix ({steps:,} steps)", "value": best,
                 "unit": "steps/s", "baseline": peer,
                 "baseline_name": "Phoenix spans/s: OTLP/HTTP -> phoenix serve (SQLite) -> counted by its GraphQL",
                 "ratio": best / peer, "goal": "report"})
    return rows


if __name__ == "__main__":
    for row in run():
        if row["value"] is None:
            print(row["name"])
            continue
        print(f"{row['name']}: {row['value']:,.0f} {row['unit']} (baseline {row['baseline_name']}: "
              f"{row['baseline']:,.0f}) ratio {row['ratio']:.2f}")
