"""Freshness at 2k events/s: how long from an agent's emit until the event is queryable in
ClickHouse, and until its incident is. An ``AuditClient`` emits 2 000 events/s (1 % of them
calls to a forbidden tool) into the embedded stack with ``agentaudit consume`` running (default
batching: 10 000 messages or 500 ms). Emit time is the event's time (set by the SDK at emit);
queryable and incident times are the rows' ``ingested_at`` (the store's clock: same host).
Baseline, measured in the same run: emit -> consumable, a plain Kafka consumer of the same
topic decoding each event as it arrives. ``python -m benchmarks freshness``
(``AGENTAUDIT_BENCH_FRESHNESS_S`` sets the emission time, default 20 s).
"""

from __future__ import annotations

import os
import threading
import time

from agentaudit.infra.clickhouse import connect
from agentaudit.infra.kafka import KafkaConsumer
from agentaudit.producers import AuditClient
from agentaudit.schemas import AvroCodec
from benchmarks._stack import FAST_GROUP, embedded_stack, wait_for

RATE = 2000


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


def _raw_latencies(kafka, stop: threading.Event, out: list[float]) -> None:
    """Emit -> consumable (ms) for every event, read by a plain consumer in its own group."""
    codec = AvroCodec("action")
    consumer = KafkaConsumer(kafka, "bench-freshness-raw", {"auto.offset.reset": "latest", "fetch.wait.max.ms": 10,
                                                            **FAST_GROUP})
    consumer.subscribe([kafka.topics.actions])
    try:
        while not stop.is_set():
            messages = consumer.consume_batch(1000, timeout=0.1)
            now_us = time.time_ns() // 1000
            records, _, _ = codec.decode_batch([m.value() for m in messages])
            out.extend((now_us - r["event_time_us"]) / 1000 for r in records)
    finally:
        consumer.close()


def run() -> list[dict]:
    seconds = float(os.environ.get("AGENTAUDIT_BENCH_FRESHNESS_S", "20"))
    with embedded_stack() as stack, connect(stack.store) as store:
        client = AuditClient(kafka=stack.kafka, tenant="bench", agent="fresh-bot", spool_dir=str(stack.work / "spool"))
        raw: list[float] = []
        stop = threading.Event()
        reader = threading.Thread(target=_raw_latencies, args=(stack.kafka, stop, raw), daemon=True)
        with stack.consumer("--builtin-rules", AGENTAUDIT_SINK_FORBIDDEN_TOOLS="rm"):
            client.event("decision", name="warm-up")
            wait_for(lambda: store.query("SELECT count() FROM actions").rows[0][0] >= 1, 60, "the consumer to start")
            reader.start()
            time.sleep(3)  # the raw reader joins its group
            began = time.monotonic()
            sent = 0
            while time.monotonic() - began < seconds:
                if sent % 200 == 0:
                    with client.action("execute_tool", name="rm"):  # start + end: 2 events, one incident
                        pass
                    sent += 2
                else:
                    client.event("decision", name="step", attributes={"i": sent})
                    sent += 1
                ahead = began + sent / RATE - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            achieved = sent / (time.monotonic() - began)
            client.flush(60)
            wait_for(lambda: store.query("SELECT count() FROM actions").rows[0][0] >= sent + 1, 120, "events stored")
            time.sleep(1)
            stop.set()
            reader.join(10)
        client.close()
        queryable = [r[0] / 1000 for r in store.query(
            "SELECT dateDiff('microsecond', event_time, ingested_at) FROM actions WHERE name != 'warm-up'").rows]
        incident = [r[0] / 1000 for r in store.query(
            "SELECT dateDiff('microsecond', min(first_seen), min(ingested_at)) FROM incidents "
            "GROUP BY incident_id").rows]
    rows = []
    for label, values in (("emit -> queryable", queryable), ("emit -> incident", incident)):
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            value, base = _quantile(values, q), _quantile(raw, q)
            rows.append({"name": f"{label} {name} ({len(values):,} at {achieved:,.0f}/s)", "value": value,
                         "unit": "ms", "baseline": base, "baseline_name": f"emit -> consumable {name} (raw consumer)",
                         "ratio": value / base if base else None,
                         "goal": "p99 < 2000 ms" if name == "p99" else "< batch timeout + insert"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
