"""A fast agent on the real broker: 200,000 actions (400,000 events with a few hundred bytes of
attributes) emitted as fast as one thread can, with the default policy and with ``block``; then the
same through a 20 s broker stall (SIGSTOP/SIGCONT of a dedicated tansu) and through a SIGKILL of the
agent process while its spool is being replayed. Every event arrives exactly once, in stream order,
and ``flush()`` returns soon after the last confirmation. Each test prints its figures and how long it
took; ``AGENTAUDIT_SDK_LOAD_ACTIONS`` scales the run (default 200000; 50000 on the Apache Kafka tier)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.kafka import KafkaAdmin, KafkaConsumer
from agentaudit.producers import AuditClient
from agentaudit.schemas import AvroCodec
from agentaudit.settings import KafkaSettings, StoreSettings, TopicNames
from tests.fault.support import ConsumerProcess, stack_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

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


def _run_agent(audit: AuditClient, actions: int, progress: list[int] | None = None) -> float:
    """Emit ``actions`` tool calls back to back; returns the seconds it took."""
    began = time.perf_counter()
    for i in range(actions):
        with audit.action("execute_tool", name="db.query", attributes=ATTRIBUTES):
            pass
        if progress is not None:
            progress[0] = i + 1
    return time.perf_counter() - began


def _flush_timed(audit: AuditClient, total: int, timeout: float) -> tuple[bool, float, float]:
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


def _read_topic(kafka: KafkaSettings, topic: str, expected: int, timeout: float = 180.0) -> dict[str, list[int]]:
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


def _assert_every_event_once_in_order(streams: dict[str, list[int]], total: int) -> None:
    for stream, seqs in streams.items():
        assert seqs == list(range(len(seqs))), (
            f"stream {stream}: {len(seqs)} events, not seq 0..n-1 in order "
            f"(first break at index {next(i for i, s in enumerate(seqs) if s != i)})")
    assert sum(len(s) for s in streams.values()) == total


@pytest.mark.broker
@pytest.mark.parametrize("policy", ["spool", "block"])
def test_a_full_speed_agent_delivers_every_event_once_in_order(
        policy: str, kafka_settings_factory: Callable[..., KafkaSettings], tmp_path: Path) -> None:
    started = time.monotonic()
    kafka = kafka_settings_factory(partitions=3)
    topic, total = kafka.topics.actions, 2 * ACTIONS
    audit = AuditClient(kafka=kafka, tenant="acme", agent="fast-agent", spool_dir=tmp_path / "spool",
                        **({} if policy == "spool" else {"full_policy": policy}))
    try:
        emit_s = _run_agent(audit, ACTIONS)
        flushed, flush_s, after_confirmation = _flush_timed(audit, total, 120)
        stats = audit.stats()
    finally:
        audit.close()
    streams = _read_topic(kafka, topic, total)
    print(f"\n[sdk full speed, {policy}] {total} events emitted in {emit_s:.1f}s ({total / emit_s:,.0f}/s); "
          f"flush {flushed} after {flush_s:.1f}s, {after_confirmation:.2f}s after the last confirmation; "
          f"in topic {sum(len(s) for s in streams.values())}; spooled {stats['spooled']} dropped "
          f"{stats['dropped_queue_full'] + stats['dropped_spool_full']} blocked emits {stats['blocked_emits']}; "
          f"test took {time.monotonic() - started:.0f}s")
    assert flushed, stats
    assert stats["dropped_queue_full"] == stats["dropped_spool_full"] == 0
    _assert_every_event_once_in_order(streams, total)
    assert after_confirmation <= FLUSH_AFTER_LAST_CONFIRMATION_S


def _stack(kafka: KafkaSettings, store_settings: StoreSettings, group: str, log: Path) -> ConsumerProcess:
    migrate(store_settings)
    return ConsumerProcess(stack_env(kafka, store_settings), ["--group", group, "--no-rules"], log).start()


def _stored(store: Store) -> tuple[int, int, int, dict[str, tuple[int, int, int]]]:
    """``(count() FINAL, count(DISTINCT event_id), raw count(), {stream: (events, min seq, max seq)})``."""
    final, distinct = store.query("SELECT count(), count(DISTINCT event_id) FROM actions FINAL").rows[0]
    raw = store.query("SELECT count() FROM actions").rows[0][0]
    per_stream = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in store.query(
        "SELECT stream_id, count(), min(seq), max(seq) FROM actions FINAL GROUP BY stream_id").rows}
    return int(final), int(distinct), int(raw), per_stream


def _assert_stored_once(store: Store, total: int, consumer: ConsumerProcess) -> tuple[int, int, int]:
    try:
        wait_until(lambda: _stored(store)[0] >= total, 240, f"{total} events stored", poll=1.0, alive=[consumer])
    except AssertionError as exc:
        final, distinct, raw, per_stream = _stored(store)
        raise AssertionError(f"stored FINAL {final} distinct {distinct} raw {raw} of {total}; "
                             f"streams (events, min seq, max seq): {per_stream}") from exc
    time.sleep(1.0)
    final, distinct, raw, per_stream = _stored(store)
    assert final == distinct == total, (final, distinct, total)
    for stream, (events, low, high) in per_stream.items():
        assert (low, high) == (0, events - 1), f"stream {stream}: seq {low}..{high} for {events} events"
    return final, distinct, raw


@pytest.mark.fault
def test_a_20s_broker_stall_under_full_speed_loses_nothing_and_stores_nothing_twice(
        embedded_broker_factory: Callable[..., Any], store_settings_factory: Callable[[], StoreSettings],
        group_factory: Callable[..., str], tmp_path: Path) -> None:
    started = time.monotonic()
    broker = embedded_broker_factory()  # its own tansu: the session's broker is never paused
    prefix = f"stall-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap,
                          topics=TopicNames(**{n: f"{prefix}.{n}" for n in TopicNames.model_fields}))
    KafkaAdmin(kafka).ensure_topics(kafka.topics.model_dump().values(), partitions=3)
    store_settings = store_settings_factory()
    total = 2 * ACTIONS
    audit = AuditClient(kafka=kafka, tenant="acme", agent="stalled-agent", spool_dir=tmp_path / "spool")
    progress = [0]
    stall_window: list[int] = []

    def stall() -> None:
        while progress[0] < ACTIONS // 4:
            time.sleep(0.01)
        stall_window.append(progress[0])
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            time.sleep(STALL_S)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        stall_window.append(progress[0])

    staller = threading.Thread(target=stall, name="stall")
    staller.start()
    try:
        emit_s = _run_agent(audit, ACTIONS, progress)
        staller.join()
        flushed, flush_s, after_confirmation = _flush_timed(audit, total, 180)
        stats = audit.stats()
    finally:
        staller.join()
        audit.close()
    consumer = _stack(kafka, store_settings, group_factory(), tmp_path / "consume.log")
    try:
        with connect(store_settings) as store:
            final, distinct, raw = _assert_stored_once(store, total, consumer)
    finally:
        consumer.stop()
    print(f"\n[sdk stall] broker SIGSTOPped {STALL_S:.0f}s between actions {stall_window[0]} and "
          f"{stall_window[-1]}; {total} events emitted in {emit_s:.1f}s; flush {flushed} after {flush_s:.1f}s, "
          f"{after_confirmation:.2f}s after the last confirmation; stored count() FINAL {final}, distinct "
          f"{distinct}, raw {raw}; spooled {stats['spooled']} dropped "
          f"{stats['dropped_queue_full'] + stats['dropped_spool_full']}; test took {time.monotonic() - started:.0f}s")
    assert flushed and stats["dropped_queue_full"] == stats["dropped_spool_full"] == 0, stats
    assert after_confirmation <= FLUSH_AFTER_LAST_CONFIRMATION_S


_KILLED_AGENT = textwrap.dedent("""
    import json, sys, time
    from agentaudit.producers import AuditClient
    from tests.integration.test_sdk_backpressure import _run_agent
    bootstrap, topic, spool, actions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    audit = AuditClient(bootstrap, topic=topic, tenant="acme", agent="killed-agent", spool_dir=spool)
    audit.decision("start")
    assert audit.flush(60)
    print("ready", flush=True)
    sys.stdin.readline()  # the broker is stopped now: what follows piles up in the spool
    _run_agent(audit, actions)
    while audit.stats()["sealed"] < 2 * actions + 1:
        time.sleep(0.02)
    print(json.dumps(audit.stats()), flush=True)
    durable = 0
    while True:  # the broker is back: report while the spool is replayed, once every event is on disk
        stats = audit.stats()  # (seen twice 20 ms apart: the spool's last batch was synced in between)
        durable = durable + 1 if stats["delivered"] + stats["spool_pending"] == stats["sealed"] else 0
        if durable >= 2:
            print(json.dumps(stats), flush=True)
        time.sleep(0.02)
""")


@pytest.mark.fault
def test_an_agent_killed_mid_spool_is_replayed_by_the_next_process_once(
        embedded_broker_factory: Callable[..., Any], store_settings_factory: Callable[[], StoreSettings],
        group_factory: Callable[..., str], tmp_path: Path) -> None:
    import json

    started = time.monotonic()
    broker = embedded_broker_factory()  # its own tansu: stopped while the agent spools
    prefix = f"kill-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap,
                          topics=TopicNames(**{n: f"{prefix}.{n}" for n in TopicNames.model_fields}))
    KafkaAdmin(kafka).ensure_topics(kafka.topics.model_dump().values(), partitions=3)
    store_settings = store_settings_factory()
    total = 2 * ACTIONS + 1
    spool = tmp_path / "spool"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_AGENT, kafka.bootstrap_servers, kafka.topics.actions,
                             str(spool), str(ACTIONS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    before: dict[str, Any] = {}
    try:
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            first = json.loads(proc.stdout.readline())  # everything emitted is sealed
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        assert first["sealed"] == total and first["spool_pending"] > 0, first
        for line in proc.stdout:  # replay under way: kill it in the middle
            before = json.loads(line)
            if before["replayed"] > 0 and before["spool_pending"] > 0:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
    assert before.get("replayed", 0) > 0 and before["spool_pending"] > 0, f"not killed mid-replay: {before}"

    replay_began = time.monotonic()
    with AuditClient(kafka=kafka, tenant="acme", agent="killed-agent", spool_dir=spool) as audit:
        adopted = audit.stats()["spool_pending"]
        flushed = audit.flush(180)
        stats = audit.stats()
    replay_s = time.monotonic() - replay_began
    consumer = _stack(kafka, store_settings, group_factory(), tmp_path / "consume.log")
    try:
        with connect(store_settings) as store:
            final, distinct, raw = _assert_stored_once(store, total, consumer)
    finally:
        consumer.stop()
    print(f"\n[sdk kill] agent SIGKILLed while replaying its spool: {before['spool_pending']} of {total} events "
          f"still spooled (replayed {before['replayed']}); the next process adopted {adopted} and replayed them in "
          f"{replay_s:.1f}s (flush {flushed}); stored count() FINAL {final}, distinct {distinct}, raw {raw} "
          f"(raw - distinct: the window in flight at the kill, sent again); test took "
          f"{time.monotonic() - started:.0f}s")
    assert flushed, stats
    assert adopted > 0 and stats["replayed"] >= adopted
