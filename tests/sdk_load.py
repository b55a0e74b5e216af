"""What the SDK load tests share (tests/integration/test_sdk_backpressure*.py): a full-speed agent, a flush
timed against the last delivery confirmation, and checks that every event arrived once, in stream order, on
the topic and in the store. One file per scenario, so that they run side by side on separate workers."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.kafka import KafkaAdmin, KafkaConsumer
from agentaudit.producers import AuditClient
from agentaudit.schemas import AvroCodec
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.fault.support import ConsumerProcess, stack_env, wait_until

# Full size on the embedded broker; the Apache Kafka tier (AGENTAUDIT_TEST_BOOTSTRAP, 20 min for every broker
# test) checks the same behaviour at a quarter of it.
ACTIONS = int(os.environ.get("AGENTAUDIT_SDK_LOAD_ACTIONS",
                             "50000" if os.environ.get("AGENTAUDIT_TEST_BOOTSTRAP") else "200000"))
STALL_S = 20.0
FLUSH_AFTER_LAST_CONFIRMATION_S = 10.0
#: a tool call's attributes as an agent records them: a few hundred bytes
ATTRIBUTES = {"tool.args": '{"sql": "select * from invoices where customer_id = ? and status = ?", '
                           '"params": [48213, "open"], "limit": 500}',
              "user": "alice@example.com", "ticket": "OPS-12345", "region": "eu-west-1",
              "note": "nightly reconciliation of open invoices against the ledger export"}
_CODEC = AvroCodec("action")


def run_agent(audit: AuditClient, actions: int, progress: list[int] | None = None) -> float:
    """Emit ``actions`` tool calls back to back; returns the seconds it took."""
    began = time.perf_counter()
    for i in range(actions):
        with audit.action("execute_tool", name="db.query", attributes=ATTRIBUTES):
            pass
        if progress is not None:
            progress[0] = i + 1
    return time.perf_counter() - began


def flush_timed(audit: AuditClient, total: int, timeout: float) -> tuple[bool, float, float]:
    """``flush()``, and how long it returned after the last delivery confirmation (polled every 5 ms)."""
    confirmed_at: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if audit.stats()["delivered"] >= total:
                confirmed_at.append(time.monotonic())
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    began = time.monotonic()
    flushed = audit.flush(timeout)
    returned = time.monotonic()
    stop.set()
    watcher.join()
    if confirmed_at:
        after_confirmation = returned - confirmed_at[0]
    else:  # confirmed within the last poll before flush() returned, or never
        after_confirmation = 0.0 if audit.stats()["delivered"] >= total else float("inf")
    return flushed, returned - began, after_confirmation


def read_topic(kafka: KafkaSettings, topic: str, expected: int, timeout: float = 180.0) -> dict[str, list[int]]:
    """Seqs of every stream in the topic, in log order (a stream lives in one partition); keeps no bodies."""
    partitions = KafkaAdmin(kafka).partitions_for(topic, timeout=10)
    streams: dict[str, list[int]] = {}
    read = 0
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    with KafkaConsumer(kafka, f"check-{uuid.uuid4().hex}", {"enable.partition.eof": False}) as consumer:
        consumer.assign([(topic, p, -2) for p in partitions])
        while time.monotonic() < deadline and time.monotonic() - last < 5.0:
            batch = consumer.consume_batch(5000, timeout=0.2)
            if not batch:
                if read >= expected:
                    break
                continue
            last = time.monotonic()
            for message in batch:
                record = _CODEC.decode(message.value())
                streams.setdefault(record["stream_id"], []).append(record["seq"])
            read += len(batch)
    return streams


def assert_every_event_once_in_order(streams: dict[str, list[int]], total: int) -> None:
    """Each stream's seqs, in log order, are 0..n-1, and ``total`` in all; a failure names the first break and
    the missing and repeated seqs, so it says whether events were lost, sent twice or reordered."""
    for stream, seqs in streams.items():
        if seqs != list(range(len(seqs))):
            at = next(i for i, seq in enumerate(seqs) if seq != i)
            missing = sorted(set(range(max(seqs) + 1)) - set(seqs))
            repeated = sorted(seq for seq, n in Counter(seqs).items() if n > 1)
            raise AssertionError(f"stream {stream}: {len(seqs)} events, not seq 0..n-1 in order: first break at index "
                                 f"{at} ({seqs[max(0, at - 3):at + 6]}), missing {missing[:20]}, repeated "
                                 f"{repeated[:20]}")
    assert sum(len(s) for s in streams.values()) == total


def consume_process(kafka: KafkaSettings, store_settings: StoreSettings, group: str, log: Path) -> ConsumerProcess:
    migrate(store_settings)
    return ConsumerProcess(stack_env(kafka, store_settings), ["--group", group, "--no-rules"], log).start()


def stored(store: Store) -> tuple[int, int, int, dict[str, tuple[int, int, int]]]:
    """``(count() FINAL, count(DISTINCT event_id), raw count(), {stream: (events, min seq, max seq)})``."""
    final, distinct = store.query("SELECT count(), count(DISTINCT event_id) FROM actions FINAL").rows[0]
    raw = store.query("SELECT count() FROM actions").rows[0][0]
    per_stream = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in store.query(
        "SELECT stream_id, count(), min(seq), max(seq) FROM actions FINAL GROUP BY stream_id").rows}
    return int(final), int(distinct), int(raw), per_stream


def stored_final(store: Store) -> int:
    """``count() FINAL`` alone: what the wait below polls, where :func:`stored` runs three queries over every row."""
    return int(store.query("SELECT count() FROM actions FINAL").rows[0][0])


def assert_stored_once(store: Store, total: int, consumer: ConsumerProcess) -> tuple[int, int, int]:
    try:
        wait_until(lambda: stored_final(store) >= total, 240, f"{total} events stored", poll=1.0, alive=[consumer])
    except AssertionError as exc:
        final, distinct, raw, per_stream = stored(store)
        raise AssertionError(f"stored FINAL {final} distinct {distinct} raw {raw} of {total}; "
                             f"streams (events, min seq, max seq): {per_stream}") from exc
    time.sleep(1.0)
    final, distinct, raw, per_stream = stored(store)
    assert final == distinct == total, (final, distinct, total)
    for stream, (events, low, high) in per_stream.items():
        assert (low, high) == (0, events - 1), f"stream {stream}: seq {low}..{high} for {events} events"
    return final, distinct, raw


def stored_once_by_a_consumer(kafka: KafkaSettings, store_settings: StoreSettings, group: str, log: Path,
                              total: int) -> tuple[int, int, int]:
    """Run ``agentaudit consume --no-rules`` until ``total`` events are stored, each once (see
    :func:`assert_stored_once`); returns ``(count() FINAL, count(DISTINCT event_id), raw count())``."""
    consumer = consume_process(kafka, store_settings, group, log)
    try:
        with connect(store_settings) as store:
            return assert_stored_once(store, total, consumer)
    finally:
        consumer.stop()
