"""The SDK against a real broker: every event arrives once, in stream order, as a valid hash chain,
through a broker outage and through a SIGKILL of the producing process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentaudit.infra.embedded import TansuBroker, free_port
from agentaudit.infra.kafka import KafkaAdmin, read_all
from agentaudit.producers import AuditClient
from agentaudit.schemas import AvroCodec, body_hash, frame_body, verify_streams
from agentaudit.settings import KafkaSettings
from tests.sdk_load import assert_every_event_once_in_order

pytestmark = [pytest.mark.integration]

CODEC = AvroCodec("action")


def _decoded(settings: KafkaSettings, topic: str, expected: int, timeout: float = 30.0) -> list[tuple[dict[str, Any], str]]:
    messages = read_all(settings, topic, timeout=timeout, expected=expected + 1, idle=3.0)
    return [(CODEC.decode(m.value()), body_hash(frame_body(m.value()))) for m in messages]


def _assert_exactly_once_in_order(records: list[tuple[dict[str, Any], str]], expected: int) -> dict[str, int]:
    per_stream: dict[str, list[int]] = {}
    for record, _ in records:
        per_stream.setdefault(record["stream_id"], []).append(record["seq"])
    assert_every_event_once_in_order(per_stream, expected)
    assert verify_streams(records) == []
    return {stream: len(seqs) for stream, seqs in per_stream.items()}


@pytest.mark.broker
def test_real_output_is_one_valid_chain_per_agent_and_tampering_is_detected(
        kafka_settings: KafkaSettings, topic_factory: Callable[..., str], tmp_path: Path) -> None:
    topic = topic_factory()
    with AuditClient(kafka=kafka_settings, topic=topic, tenant="acme", agent="planner", spool_dir=tmp_path) as audit:
        with audit.action("invoke_agent", name="planner") as root:
            with audit.action("execute_tool", name="search", input={"q": "flights"}) as tool:
                tool.set_output({"hits": 3})
            audit.handoff("booker")

            def book() -> None:
                with audit.action("execute_tool", name="book", agent="booker"):
                    pass

            with audit.executor(2) as pool:
                pool.submit(book).result()
        assert audit.flush(20)
    records = _decoded(kafka_settings, topic, expected=7)
    streams = _assert_exactly_once_in_order(records, expected=7)
    assert sorted(s.split("/")[1] for s in streams) == ["booker", "planner"]
    booker = [r for r, _ in records if r["agent_id"] == "booker"]
    assert {r["parent_action_id"] for r in booker} == {root.action_id}, "child on a pool thread keeps its parent"

    planner = [(r, h) for r, h in records if r["agent_id"] == "planner"]
    # one flipped byte in a recorded message ("search" -> "rearch"): the next prev_hash no longer matches
    raw = bytearray(CODEC.encode(dict(planner[1][0])))
    assert body_hash(frame_body(bytes(raw))) == planner[1][1]  # the recorded bytes, re-encoded exactly
    raw[raw.index(b"search")] ^= 0x01
    flipped = [planner[0], (CODEC.decode(bytes(raw)), body_hash(frame_body(bytes(raw)))), *planner[2:]]
    assert [v.kind for v in verify_streams(flipped)] == ["hash_mismatch"]
    assert [v.kind for v in verify_streams(planner[:2] + planner[3:])] == ["gap"]
    assert "reorder" in {v.kind for v in verify_streams([planner[0], planner[2], planner[1], *planner[3:]])}


@pytest.mark.fault
@pytest.mark.slow
def test_broker_outage_loses_nothing_duplicates_nothing_and_never_blocks_the_agent(
        embedded_broker_factory: Callable[..., TansuBroker], tmp_path: Path) -> None:
    # Durable (S3) storage: a memory broker forgets on restart what it acknowledged before the stop,
    # which would be the broker losing data, not the SDK.
    broker = embedded_broker_factory(storage="s3")
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap)
    KafkaAdmin(settings).ensure_topics(["sdk-outage"], partitions=3)
    total, budget_ms = 10_000, 200
    audit = AuditClient(kafka=settings, topic="sdk-outage", tenant="acme", agent="worker", spool_dir=tmp_path / "spool",
                        spill_after_ms=300, full_policy="block", block_ms=budget_ms)
    emit_times: list[float] = []

    def agent() -> None:
        clock = time.perf_counter
        for i in range(total):
            began = clock()
            if i % 2:
                audit.decision("next-step", agent=f"agent-{i % 3}", reason="plan")
            else:
                audit.message("status", agent=f"agent-{i % 3}", content={"i": i})
            emit_times.append(clock() - began)
            if i % 50 == 49:
                time.sleep(0.02)  # ~2.5k events/s: the outage falls in the middle of the run

    thread = threading.Thread(target=agent)
    thread.start()
    while len(emit_times) < 2000:
        time.sleep(0.01)
    broker.stop()
    stopped_at = len(emit_times)
    time.sleep(1.0)
    broker.start()  # same port, same S3 storage
    thread.join()
    assert audit.flush(60), audit.stats()
    stats = audit.stats()
    audit.close()

    records = _decoded(settings, "sdk-outage", expected=total)
    _assert_exactly_once_in_order(records, expected=total)
    slowest_ms = max(emit_times) * 1000
    print(f"\noutage after {stopped_at} events; stats={stats}; slowest emit {slowest_ms:.2f} ms")
    assert stats["spooled"] > 0 and stats["dropped_queue_full"] == 0 and stats["dropped_spool_full"] == 0
    assert slowest_ms < budget_ms


_KILLED_PRODUCER = textwrap.dedent("""
    import sys, time
    from agentaudit.producers import AuditClient
    bootstrap, topic, spool, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    audit = AuditClient(bootstrap, topic=topic, tenant="acme", agent="nightly", spool_dir=spool)
    for i in range(total // 2):
        with audit.action("execute_tool", name="etl.step", input={"i": i}):
            pass
    while audit.stats()["spool_pending"] < total:
        time.sleep(0.05)
    print(audit.instance_id, flush=True)
    time.sleep(120)
""")


@pytest.mark.fault
@pytest.mark.broker
def test_process_killed_with_spooled_events_delivers_them_after_restart(
        kafka_settings: KafkaSettings, topic_factory: Callable[..., str], tmp_path: Path) -> None:
    topic, total = topic_factory(), 400
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: the broker is down for the first process
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_PRODUCER, dead, topic, str(tmp_path), str(total)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        instance_id = proc.stdout.readline().strip()
        assert instance_id, "the producing process did not report its spooled events"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    with AuditClient(kafka=kafka_settings, topic=topic, tenant="acme", agent="nightly", spool_dir=tmp_path) as audit:
        assert audit.stats()["spool_pending"] == total  # adopted from the killed process's slot
        assert audit.flush(30), audit.stats()
    records = _decoded(kafka_settings, topic, expected=total)
    streams = _assert_exactly_once_in_order(records, expected=total)
    assert streams == {f"{instance_id}/nightly": total}
