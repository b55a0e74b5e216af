"""The on-disk spool and the full policies: order kept across restarts, torn tails cut, bounds
respected, drops counted, emits never blocked beyond the budget, settings errors raised early."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import agentaudit.producers.client as client_module
from agentaudit.infra.embedded import free_port
from agentaudit.producers import AuditClient, SdkConfigError, SpoolError, get_client
from agentaudit.producers._queue import EventQueue, QueueEntry
from agentaudit.producers._spool import Spool
from tests.sdk_support import offline_client, spooled


def _spool(root: Path, max_bytes: int = 1 << 20) -> Spool:
    spool = Spool(root, max_bytes=max_bytes, segment_bytes=max_bytes // 4)
    spool.open()
    return spool


def _values(spool: Spool) -> list[bytes]:
    return [r.value for r in spool.read(10_000)]


def _entry(agent: str, name: str = "", size: int = 1) -> QueueEntry:
    return QueueEntry(agent, "decision", "point", name, "a1", None, "a1", 0, "run", 1_700_000_000_000_000, None, size)


def test_confirmed_records_are_gone_and_the_rest_survive_a_restart_in_order(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for i in range(10):
        assert spool.append(b"k", f"v{i}".encode())
    spool.sync()
    first = spool.read(4)
    spool.confirm(first[-1].end, 4)
    assert spool.pending == 6
    spool.close()  # like a process that stops with the broker still away

    again = _spool(tmp_path)
    assert again.dir == spool.dir and again.pending == 6
    assert _values(again) == [f"v{i}".encode() for i in range(4, 10)]
    again.rewind()  # nothing confirmed: everything is handed out again
    records = again.read(100)
    again.confirm(records[-1].end, len(records))
    assert again.empty and not list(again.dir.glob("*.seg"))  # type: ignore[union-attr]  # a disk spool has a dir
    again.close()


def test_a_torn_tail_from_a_killed_process_is_cut_off(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for i in range(3):
        spool.append(b"k", f"v{i}".encode())
    spool.sync()
    segment = next(spool.dir.glob("*.seg"))  # type: ignore[union-attr]  # a disk spool has a dir
    spool.pending = 1  # keep the files when closing
    spool.close()
    with segment.open("ab") as f:
        f.write(b"\x00\x00\x01\x00\xde\xad")  # a header promising 256 bytes, then the process died
    again = _spool(tmp_path)
    assert again.pending == 3
    again.append(b"k", b"v3")
    assert _values(again) == [b"v0", b"v1", b"v2", b"v3"]
    again.close()


def test_prepend_puts_older_records_in_front(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.append(b"k", b"c")
    spool.append(b"k", b"d")
    spool.prepend([(b"k", b"a"), (b"k", b"b")])
    assert spool.pending == 4 and _values(spool) == [b"a", b"b", b"c", b"d"]
    spool.close()


def test_the_bound_holds_and_drop_oldest_drops_whole_old_segments(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=8192)
    written = 0
    while spool.append(b"key", b"x" * 100 + str(written).encode()):
        written += 1
    assert spool.bytes <= 8192 and written > 40
    dropped = spool.drop_oldest()
    assert dropped > 0 and spool.pending == written - dropped
    assert spool.append(b"key", b"x" * 100 + str(written).encode())
    values = _values(spool)
    assert values[-1].endswith(str(written).encode()) and len(values) == written - dropped + 1
    spool.close()


def test_each_live_client_locks_its_own_slot(tmp_path: Path) -> None:
    one, two = _spool(tmp_path), _spool(tmp_path)
    assert (one.dir.name, two.dir.name) == ("slot-0", "slot-1")  # type: ignore[union-attr]  # a disk spool has a dir
    one.close()
    three = _spool(tmp_path)
    assert three.dir.name == "slot-0"  # type: ignore[union-attr]  # a disk spool has a dir
    two.close()
    three.close()


def test_queue_full_drop_oldest_counts_and_keeps_the_newest() -> None:
    queue = EventQueue(10, 1 << 20, policy="drop_oldest", block_ms=0)
    for i in range(15):
        queue.put(_entry("a", str(i), 100))
    assert queue.dropped == 5
    assert [item.name for item in queue.take(100)] == [str(i) for i in range(5, 15)]


def test_queue_byte_bound_counts_each_entrys_size() -> None:
    queue = EventQueue(100, 1000, policy="drop_oldest", block_ms=0)
    for name in ("first", "second", "third"):
        queue.put(_entry("a", name, 400))  # a body makes an entry bigger than its fields
    assert queue.dropped == 1 and queue.bytes == 800
    assert [item.name for item in queue.take(10)] == ["second", "third"] and queue.bytes == 0


def test_queue_full_block_waits_at_most_the_budget_then_drops() -> None:
    queue = EventQueue(2, 1 << 20, policy="block", block_ms=30)
    queue.put(_entry("a", "1"))
    queue.put(_entry("b", "1"))
    began = time.perf_counter()
    queue.put(_entry("c", "1"))
    waited = time.perf_counter() - began
    assert 0.025 <= waited < 0.2 and queue.dropped == 1 and queue.blocked == 1


def test_a_full_spool_drops_the_oldest_counts_it_and_never_raises(tmp_path: Path) -> None:
    audit = offline_client(tmp_path, spool_max_bytes=16_384, full_policy="drop_oldest")
    audit.decision("first")
    time.sleep(0.2)  # the broker does not answer: from now on events are spooled
    for i in range(400):
        audit.decision("step", input={"i": i})
    deadline = time.monotonic() + 20
    while audit.stats()["sealed"] < 401 and time.monotonic() < deadline:  # a loaded machine seals slowly
        time.sleep(0.01)
    audit.close(timeout=0.2)
    stats = audit.stats()
    assert stats["dropped_spool_full"] > 0 and stats["sealed"] == 401
    assert stats["spool_pending"] + stats["dropped_spool_full"] == 401
    kept = [r["seq"] for r, _ in spooled(tmp_path)]
    assert kept[-1] == 400 and kept == sorted(kept)  # the newest survive, in order


def test_misconfiguration_raises_at_construction(tmp_path: Path) -> None:
    with pytest.raises(SdkConfigError, match="unknown settings"):
        AuditClient("127.0.0.1:1", spool_dir=tmp_path, colour="blue")
    with pytest.raises(SdkConfigError, match="full_policy"):
        AuditClient("127.0.0.1:1", spool_dir=tmp_path, full_policy="panic")
    with pytest.raises(SdkConfigError, match="queue_max_events"):
        AuditClient("127.0.0.1:1", spool_dir=tmp_path, queue_max_events=0)
    with pytest.raises(SdkConfigError, match="redactor"):
        AuditClient("127.0.0.1:1", spool_dir=tmp_path, redactor="mask")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(SpoolError, match="AGENTAUDIT_SPOOL_DIR"):
        AuditClient("127.0.0.1:1", spool_dir=not_a_dir)


def test_get_client_reads_the_environment_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTAUDIT_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("AGENTAUDIT_TENANT", "env-co")
    monkeypatch.setenv("AGENTAUDIT_AGENT_ID", "env-bot")
    monkeypatch.setenv("AGENTAUDIT_SPOOL_DIR", str(tmp_path))
    monkeypatch.setattr(client_module, "_default", None)
    audit = get_client(ensure_topic=False)
    try:
        assert get_client() is audit
        assert (audit.settings.tenant, audit.settings.agent_id) == ("env-co", "env-bot")
        assert audit.stats()["spool_dir"] == str(tmp_path / "slot-0")
        with pytest.raises(SdkConfigError, match="already built"):
            get_client(tenant="other")
    finally:
        audit.close(timeout=0.2)
    assert client_module._default is None


def test_a_full_spool_under_block_makes_emits_wait_at_most_the_budget(tmp_path: Path) -> None:
    audit = offline_client(tmp_path, spool_max_bytes=8192, full_policy="block", block_ms=20, queue_max_events=20)
    audit.decision("first")
    time.sleep(0.2)  # the broker does not answer: events are spooled until the spool is full
    slowest = 0.0
    for i in range(120):
        began = time.perf_counter()
        audit.decision("step", input={"i": i})
        slowest = max(slowest, time.perf_counter() - began)
    began = time.perf_counter()
    audit.close(timeout=0.3)
    assert time.perf_counter() - began < 3.0  # closing does not hang on the full spool
    stats = audit.stats()
    assert stats["blocked_emits"] > 0 and stats["dropped_queue_full"] > 0
    # the 20 ms budget plus slack for a loaded CI machine; unbounded, an emit would wait until close
    assert slowest < 0.020 + 0.180


def test_queue_drops_are_counted_per_agent_so_the_worker_can_leave_a_gap() -> None:
    queue = EventQueue(4, 1 << 20, policy="drop_oldest", block_ms=0)
    for i in range(10):
        queue.put(_entry("planner" if i % 2 else "booker", str(i)))
    assert queue.take_gaps() == {"booker": 3, "planner": 3} and queue.dropped == 6
    assert queue.take_gaps() == {}  # handed over once


def test_after_one_timed_out_wait_emits_drop_without_waiting_until_the_worker_takes_again() -> None:
    queue = EventQueue(2, 1 << 20, policy="spool", block_ms=30)
    queue.put(_entry("a", "1"))
    queue.put(_entry("a", "2"))
    began = time.perf_counter()
    queue.put(_entry("a", "3"))  # the worker does not take: waits the budget, then drops
    first = time.perf_counter() - began
    began = time.perf_counter()
    for i in range(100):
        queue.put(_entry("a", str(i)))  # the worker counts as stalled: no more waiting
    rest = time.perf_counter() - began
    assert first >= 0.025 and rest < 0.025 and queue.dropped == 101
    assert len(queue.take(10)) == 2
    began = time.perf_counter()
    queue.put(_entry("a", "4"))
    queue.put(_entry("a", "5"))
    queue.put(_entry("a", "6"))  # it took again: a full queue makes the emit wait once more
    assert time.perf_counter() - began >= 0.025 and queue.take_gaps() == {"a": 102}


def test_a_full_spool_under_the_default_policy_keeps_the_oldest_and_marks_the_drop(tmp_path: Path) -> None:
    audit = offline_client(tmp_path, spool_max_bytes=16_384)
    audit.decision("first")
    time.sleep(0.2)  # the broker does not answer: from now on events are spooled
    for i in range(400):
        audit.decision("step", input={"i": i})
    deadline = time.monotonic() + 20
    while audit.stats()["sealed"] < 401 and time.monotonic() < deadline:
        time.sleep(0.01)
    audit.close(timeout=0.2)
    stats = audit.stats()
    kept = [r["seq"] for r, _ in spooled(tmp_path)]
    assert stats["dropped_spool_full"] > 0 and stats["dropped_queue_full"] == 0
    assert kept == sorted(kept) and kept[:3] == [0, 1, 2]  # the oldest stay, in order
    assert len(kept) + stats["dropped_spool_full"] == stats["sealed"]
