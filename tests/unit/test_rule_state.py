"""DurableEvaluator: rule state survives a crash, applied exactly once; stale or broken files start fresh."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from agentaudit.consumers.exceptions import ConsumerError
from agentaudit.consumers.rule_state import DurableEvaluator
from agentaudit.producers.simulator import SimConfig, Simulator
from agentaudit.rules import load_evaluator
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.schemas import AvroCodec, Incident, frame_body

BATCH = 500


@lru_cache(maxsize=1)
def _log() -> tuple[dict[str, Any], ...]:
    codec = AvroCodec("action")
    out = []
    for offset, (_key, value, _) in enumerate(Simulator(SimConfig(seed=5, events=6000)).events()):
        record = codec.decode(value)
        record.update(_topic="agentaudit.actions", _partition=0, _offset=offset,
                      event_hash=hashlib.sha256(frame_body(value)).hexdigest())
        out.append(record)
    return tuple(out)


def _records(start: int, stop: int) -> list[dict[str, Any]]:
    return [dict(r) for r in _log()[start:stop]]  # fresh dicts, as a re-read decodes anew


def _judge(evaluator: BaseEvaluator, records: list[dict[str, Any]], store: dict[str, int]) -> list[Incident]:
    """What the sink does per batch; ``store`` keeps the highest count per id, as the incidents table does."""
    incidents = evaluator.evaluate(records) + evaluator.on_watermark(max(r["event_time_us"] for r in records))
    for incident in incidents:
        store[incident.incident_id] = max(store.get(incident.incident_id, 0), incident.count)
    return incidents


def _reference() -> dict[str, int]:
    store: dict[str, int] = {}
    evaluator = load_evaluator(None)
    for start in range(0, len(_log()), BATCH):
        _judge(evaluator, _records(start, start + BATCH), store)
    return store


def test_restart_resumes_windows_and_skips_records_already_applied(tmp_path: Path):
    reference = _reference()
    crash_at = 3000  # records [0, 3000) applied and snapshotted; the sink had committed only 2000
    committed = 2000
    store: dict[str, int] = {}
    first = DurableEvaluator(load_evaluator(None), tmp_path, name="g1")
    for start in range(0, crash_at, BATCH):
        last = _judge(first, _records(start, start + BATCH), {} if start == crash_at - BATCH else store)
    assert last  # killed after the last snapshot, before these incidents reached the store
    assert first.snapshots >= crash_at // BATCH
    first.close()  # as kill -9 does: the OS drops the lock

    second = DurableEvaluator(load_evaluator(None), tmp_path, name="g1")
    assert second.restored and second.applied == {("agentaudit.actions", 0): crash_at}
    # the sink re-reads from its commit: 1000 records already applied, then 500 new ones
    again = _judge(second, _records(committed, crash_at + BATCH), store)
    assert second.dropped == crash_at - committed
    assert {i.incident_id for i in last} <= {i.incident_id for i in again}  # the unwritten ones, repeated
    for start in range(crash_at + BATCH, len(_log()), BATCH):
        _judge(second, _records(start, start + BATCH), store)
    assert len(reference) > 10
    second.close()
    assert store == reference

    # without the restore the same crash changes the aggregates: the scenario exercises state
    amnesic: dict[str, int] = {}
    plain = load_evaluator(None)
    for start in range(0, crash_at, BATCH):
        _judge(plain, _records(start, start + BATCH), amnesic)
    plain = load_evaluator(None)
    for start in range(committed, len(_log()), BATCH):
        _judge(plain, _records(start, start + BATCH), amnesic)
    assert amnesic != reference


class _Counter(BaseEvaluator):
    """Counts records; its state is the count (a stand-in evaluator with a chosen revision)."""

    def __init__(self, revision: str) -> None:
        self.revision = revision
        self.seen = 0

    def evaluate(self, records: Sequence[dict[str, Any]]) -> list[Incident]:
        self.seen += len(records)
        return []

    def snapshot(self) -> bytes:
        return json.dumps({"revision": self.revision, "seen": self.seen}).encode()

    def restore(self, data: bytes) -> None:
        self.seen = json.loads(data)["seen"]


def _batch(start: int, stop: int, partition: int = 0) -> list[dict[str, Any]]:
    return [{"_topic": "t", "_partition": partition, "_offset": o} for o in range(start, stop)]


def _once(durable: DurableEvaluator, records: list[dict[str, Any]]) -> None:
    durable.evaluate(records)
    durable.close()


def test_snapshot_is_written_atomically_per_batch_and_per_partition(tmp_path: Path):
    durable = DurableEvaluator(_Counter("r1"), tmp_path, name="grp/one")
    durable.evaluate(_batch(0, 10) + _batch(5, 7, partition=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grp_one.lock", "grp_one.state"]  # no tmp file left
    with pytest.raises(ConsumerError, match="in use by another consumer"):
        DurableEvaluator(_Counter("r1"), tmp_path, name="grp/one")
    durable.close()
    restored = DurableEvaluator(_Counter("r1"), tmp_path, name="grp/one")
    assert restored.inner.seen == 12
    assert restored.applied == {("t", 0): 10, ("t", 3): 7}
    restored.evaluate(_batch(8, 12) + _batch(0, 8, partition=3))
    assert restored.inner.seen == 12 + 2 + 1 and restored.dropped == 2 + 7
    restored.close()


def test_revision_change_starts_fresh_state(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    _once(DurableEvaluator(_Counter("r1"), tmp_path, name="g"), _batch(0, 10))
    with caplog.at_level(logging.WARNING, "agentaudit.consumers.rule_state"):
        fresh = DurableEvaluator(_Counter("r2"), tmp_path, name="g")
    assert not fresh.restored and fresh.inner.seen == 0 and fresh.applied == {}
    assert "revision_changed" in caplog.text
    _once(fresh, _batch(0, 10))  # nothing dropped: the new revision judges them
    assert fresh.inner.seen == 10
    again = DurableEvaluator(_Counter("r2"), tmp_path, name="g")
    assert again.inner.seen == 10
    again.close()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_torn_or_corrupt_file_is_moved_aside_and_state_starts_fresh(tmp_path: Path, damage: str,
                                                                   caplog: pytest.LogCaptureFixture):
    _once(DurableEvaluator(_Counter("r1"), tmp_path, name="g"), _batch(0, 10))
    path = tmp_path / "g.state"
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:-3], "garbage": b"\x00\xff not a snapshot",
                      "flip": data[:-2] + bytes([data[-2] ^ 1]) + data[-1:]}[damage])
    with caplog.at_level(logging.ERROR, "agentaudit.consumers.rule_state"):
        fresh = DurableEvaluator(_Counter("r1"), tmp_path, name="g")
    assert not fresh.restored and fresh.inner.seen == 0 and fresh.applied == {}
    assert "rule_state.corrupt" in caplog.text
    assert not path.exists() and len(list(tmp_path.glob("g.state.corrupt-*"))) == 1
    fresh.close()


def test_hot_reload_snapshots_the_new_revision_and_a_restart_on_old_files_starts_fresh(tmp_path: Path):
    from agentaudit.consumers.rule_reload import ReloadingEvaluator

    rules = """required_engine_version: 1
rules:
  - id: unit.state
    desc: >
      Counts one tool per agent.
    condition: kind = execute_tool and name = "{tool}"
    output: "{{agent_id}} called {{name}}"
    severity: low
    tags: [sandbox, test]
"""
    path = tmp_path / "rules" / "r.yaml"
    path.parent.mkdir()
    path.write_text(rules.format(tool="alpha"))
    durable = DurableEvaluator(ReloadingEvaluator([str(path)], load=load_evaluator), tmp_path / "state", name="g")
    first = durable.revision
    durable.evaluate(_records(0, 100))
    path.write_text(rules.format(tool="beta"))
    assert durable.inner.check() is True
    durable.evaluate(_records(100, 200))  # swaps in the new revision, which starts with empty windows
    second = durable.revision
    assert second != first
    durable.close()

    same = DurableEvaluator(ReloadingEvaluator([str(path)], load=load_evaluator), tmp_path / "state", name="g")
    assert same.restored and same.applied == {("agentaudit.actions", 0): 200}
    same.close()
    path.write_text(rules.format(tool="alpha"))  # back to the first revision while down: its state is gone
    old = DurableEvaluator(ReloadingEvaluator([str(path)], load=load_evaluator), tmp_path / "state", name="g")
    assert old.revision == first and not old.restored and old.applied == {}
    old.close()
