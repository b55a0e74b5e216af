"""Per-partition rule state: resumed after a crash exactly once; stale or broken snapshots start fresh."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from agentaudit.consumers.rule_state import PartitionEvaluators, PartitionStateStore, SavedState
from agentaudit.producers.simulator import SimConfig, Simulator
from agentaudit.rules import load_evaluator
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.schemas import AvroCodec, Incident, frame_body

BATCH = 500
TOPIC = "agentaudit.actions"


@lru_cache(maxsize=1)
def _log() -> tuple[dict[str, Any], ...]:
    codec = AvroCodec("action")
    out = []
    for _key, value, _ in Simulator(SimConfig(seed=5, events=6000)).events():
        record = codec.decode(value)
        record["event_hash"] = hashlib.sha256(frame_body(value)).hexdigest()
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


def test_the_next_owner_resumes_the_windows_and_the_offset_of_the_last_checkpoint(tmp_path: Path):
    reference = _reference()
    crash_at = 3000  # checkpoints up to 3000: incidents written, then state saved, then offsets committed
    store: dict[str, int] = {}
    states = PartitionStateStore(tmp_path)
    first = PartitionEvaluators(lambda: load_evaluator(None), states, "g1")
    assert first.assign(TOPIC, 0) is None
    for start in range(0, crash_at, BATCH):
        _judge(first.get(TOPIC, 0), _records(start, start + BATCH), store)
        first.snapshot({(TOPIC, 0): start + BATCH})
    _judge(first.get(TOPIC, 0), _records(crash_at, crash_at + BATCH), {})  # judged, then killed before the checkpoint

    second = PartitionEvaluators(lambda: load_evaluator(None), states, "g1")
    resume = second.assign(TOPIC, 0)
    assert resume == crash_at and second.restored == 1
    for start in range(resume, len(_log()), BATCH):  # the sink judges from the snapshot's offset on
        _judge(second.get(TOPIC, 0), _records(start, start + BATCH), store)
    assert len(reference) > 10
    assert store == reference

    # without the restore the same crash changes the aggregates: the scenario exercises state
    amnesic: dict[str, int] = {}
    plain = load_evaluator(None)
    for start in range(0, crash_at, BATCH):
        _judge(plain, _records(start, start + BATCH), amnesic)
    plain = load_evaluator(None)
    for start in range(crash_at, len(_log()), BATCH):
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


def test_each_partition_has_its_own_snapshot_written_atomically(tmp_path: Path):
    evaluators = PartitionEvaluators(lambda: _Counter("r1"), PartitionStateStore(tmp_path), "grp/one")
    for partition, count in ((0, 10), (3, 2)):
        evaluators.assign(TOPIC, partition)
        evaluators.get(TOPIC, partition).evaluate([{}] * count)
    evaluators.snapshot({(TOPIC, 0): 10, (TOPIC, 3): 7, ("other.topic", 0): 4})  # no evaluator: nothing saved
    assert sorted(p.name for p in (tmp_path / "grp_one").iterdir()) == [f"{TOPIC}-0.state", f"{TOPIC}-3.state"]
    evaluators.revoke(TOPIC, 3)

    again = PartitionEvaluators(lambda: _Counter("r1"), PartitionStateStore(tmp_path), "grp/one")
    assert again.assign(TOPIC, 3) == 7 and again.get(TOPIC, 3).seen == 2
    assert again.assign(TOPIC, 0) == 10 and again.get(TOPIC, 0).seen == 10
    assert again.assign(TOPIC, 1) is None and again.get(TOPIC, 1).seen == 0


def test_a_revoked_partition_keeps_the_state_of_its_last_checkpoint(tmp_path: Path):
    evaluators = PartitionEvaluators(lambda: _Counter("r1"), PartitionStateStore(tmp_path), "g")
    evaluators.assign(TOPIC, 0)
    evaluators.get(TOPIC, 0).evaluate([{}] * 5)
    evaluators.snapshot({(TOPIC, 0): 5})
    evaluators.get(TOPIC, 0).evaluate([{}] * 3)  # judged but never checkpointed (a batch waiting out a retry)
    evaluators.revoke(TOPIC, 0)

    assert evaluators.assign(TOPIC, 0) == 5 and evaluators.get(TOPIC, 0).seen == 5  # re-read from 5, not counted twice


def test_revision_change_starts_fresh_state(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    states = PartitionStateStore(tmp_path)
    states.save("g", TOPIC, 0, SavedState(10, "r1", _Counter("r1").snapshot()))
    with caplog.at_level(logging.WARNING, "agentaudit.consumers.rule_state"):
        fresh = PartitionEvaluators(lambda: _Counter("r2"), states, "g")
        assert fresh.assign(TOPIC, 0) is None
    assert fresh.restored == 0 and fresh.get(TOPIC, 0).seen == 0
    assert "revision_changed" in caplog.text


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_torn_or_corrupt_file_is_moved_aside_and_state_starts_fresh(tmp_path: Path, damage: str,
                                                                   caplog: pytest.LogCaptureFixture):
    states = PartitionStateStore(tmp_path)
    counter = _Counter("r1")
    counter.seen = 10
    states.save("g", TOPIC, 0, SavedState(10, "r1", counter.snapshot()))
    path = states.file("g", TOPIC, 0)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:-3], "garbage": b"\x00\xff not a snapshot",
                      "flip": data[:-2] + bytes([data[-2] ^ 1]) + data[-1:]}[damage])
    with caplog.at_level(logging.ERROR, "agentaudit.consumers.rule_state"):
        fresh = PartitionEvaluators(lambda: _Counter("r1"), states, "g")
        assert fresh.assign(TOPIC, 0) is None
    assert fresh.get(TOPIC, 0).seen == 0
    assert "rule_state.corrupt" in caplog.text
    assert not path.exists() and len(list(path.parent.glob(f"{path.name}.corrupt-*"))) == 1


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
    states = PartitionStateStore(tmp_path / "state")

    def reloading() -> ReloadingEvaluator:
        return ReloadingEvaluator([str(path)], load=load_evaluator)

    evaluators = PartitionEvaluators(reloading, states, "g")
    evaluators.assign(TOPIC, 0)
    evaluator = evaluators.get(TOPIC, 0)
    first = evaluator.revision
    evaluator.evaluate(_records(0, 100))
    path.write_text(rules.format(tool="beta"))
    assert evaluator.check() is True
    evaluator.evaluate(_records(100, 200))  # swaps in the new revision, which starts with empty windows
    assert evaluator.revision != first
    evaluators.snapshot({(TOPIC, 0): 200})
    evaluators.close()

    same = PartitionEvaluators(reloading, states, "g")
    assert same.assign(TOPIC, 0) == 200
    same.close()
    path.write_text(rules.format(tool="alpha"))  # back to the first revision while down: its state is gone
    old = PartitionEvaluators(reloading, states, "g")
    assert old.assign(TOPIC, 0) is None and old.get(TOPIC, 0).revision == first
    old.close()
