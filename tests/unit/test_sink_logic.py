"""The sink's batch logic without a broker or a store: in-memory clients given to its constructor.

Dead letters keep the batch going, the commit waits for every write and the rule state snapshot, a
failed insert commits nothing, and a partition's restored state is not fed the records it applied.
The same paths on the real broker and store: tests/integration/test_sink_pipeline.py, test_sink_faults.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agentaudit.consumers.dlq import REASON_HEADER, SOURCE_OFFSET_HEADER
from agentaudit.consumers.rule_state import PartitionEvaluators, PartitionStateStore, SavedState
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.schemas import Incident
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.consumer_fakes import FakeAdmin, FakeConsumer, FakeMessage, FakeProducer, FakeStore
from tests.sink_support import framed_events

KAFKA = KafkaSettings(bootstrap_servers="unused:9092")
ACTIONS = KAFKA.topics.actions


class Recording(BaseEvaluator):
    """Remembers the event ids it judged; its state is that list (so a snapshot can be checked)."""

    revision = "r1"

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.keys: set[str] = set()

    def evaluate(self, records: Sequence[dict[str, Any]]) -> list[Incident]:
        self.seen.extend(r["event_id"] for r in records)
        self.keys.update(k for r in records for k in r)
        return []

    def snapshot(self) -> bytes:
        return ",".join(self.seen).encode()

    def restore(self, data: bytes) -> None:
        self.seen = data.decode().split(",") if data else []


def messages(events: list[tuple[dict, bytes]], first: int = 0, partition: int = 0) -> list[FakeMessage]:
    return [FakeMessage(ACTIONS, partition, first + n, data, record["stream_id"].encode())
            for n, (record, data) in enumerate(events)]


def make_sink(tmp_path: Path, log: list, consumer: FakeConsumer, **kwargs: Any) -> tuple[Sink, FakeProducer, FakeStore]:
    producer, store = FakeProducer(log), FakeStore(log)
    settings = SinkSettings(group="g", digests=False, consume_lifecycle=False, idle_timeout_ms=0,
                            retry_initial_s=0.01, quarantine_path=str(tmp_path / "quarantine.jsonl"))
    sink = Sink(KAFKA, StoreSettings(), settings, kwargs.pop("evaluator", Recording()), consumer=consumer,
                producer=producer, store_client=store, admin=FakeAdmin(), **kwargs)
    return sink, producer, store


def test_an_undecodable_message_goes_to_the_dlq_with_its_reason_and_the_batch_goes_on(tmp_path: Path):
    log: list = []
    events = framed_events(6, stream_id="s-1")
    batch = [*messages(events[:3]), FakeMessage(ACTIONS, 0, 3, b"not avro at all", b"junk"),
             *messages(events[3:], first=4)]
    consumer = FakeConsumer(log, [(ACTIONS, 0)], [batch])
    sink, producer, store = make_sink(tmp_path, log, consumer)

    result = sink.run_once()

    assert (result.consumed, result.inserted, result.dead_letters) == (7, 6, 1)
    [letter] = producer.on(KAFKA.topics.dlq)
    assert letter["value"] == b"not avro at all" and letter["key"] == b"junk"
    assert letter["headers"][REASON_HEADER] == b"bad_magic" and letter["headers"][SOURCE_OFFSET_HEADER] == b"3"
    assert [r["event_id"] for r in store.rows("actions")] == [r["event_id"] for r, _ in events]
    assert [r["kafka_offset"] for r in store.rows("actions")] == [0, 1, 2, 4, 5, 6]
    assert sink.evaluator.seen == [r["event_id"] for r, _ in events]
    # the evaluator sees the action as sent plus its hash; the Kafka context stays on the envelope
    assert sink.evaluator.keys == set(events[0][0]) | {"event_hash"}
    assert consumer.commits == [{(ACTIONS, 0): 7}]  # past the dead letter too


def test_the_commit_comes_after_the_inserts_and_the_acknowledged_dead_letters(tmp_path: Path):
    log: list = []
    batch = [*messages(framed_events(4)), FakeMessage(ACTIONS, 0, 4, b"junk")]
    sink, _, _ = make_sink(tmp_path, log, FakeConsumer(log, [(ACTIONS, 0)], [batch]))

    sink.run_once()

    kinds = [entry[0] for entry in log]
    assert kinds == ["insert", "flush", "commit"], log
    assert log[1] == ("flush", 1)  # the dead letter was acknowledged before the offset moved past it


def test_a_failed_insert_commits_nothing_and_rewinds_to_the_batch_start(tmp_path: Path):
    log: list = []
    events = framed_events(5)
    consumer = FakeConsumer(log, [(ACTIONS, 0)], [messages(events, first=10), messages(events, first=10)])
    sink, _, store = make_sink(tmp_path, log, consumer)
    store.fail = 1

    first = sink.run_once()
    assert first.retried and not first.committed
    assert consumer.commits == [] and consumer.seeks == [(ACTIONS, 0, 10)]

    second = sink.run_once()  # the re-read batch: stored, committed, and not judged a second time
    assert second.committed == {(ACTIONS, 0): 15}
    assert len(store.rows("actions")) == 5
    assert sink.evaluator.seen == [r["event_id"] for r, _ in events]


def test_a_failed_commit_is_logged_and_the_next_batch_goes_on(tmp_path: Path):
    log: list = []
    consumer = FakeConsumer(log, [(ACTIONS, 0)], [messages(framed_events(2))])
    consumer.fail_commit = True
    sink, _, store = make_sink(tmp_path, log, consumer)

    result = sink.run_once()

    assert not result.retried and result.committed == {} and len(store.rows("actions")) == 2


def test_partition_state_is_snapshotted_before_the_commit_and_restored_by_the_next_owner(tmp_path: Path):
    events = framed_events(10)
    states = PartitionStateStore(tmp_path / "state")
    log: list = []
    first_consumer = FakeConsumer(log, [(ACTIONS, 0)], [messages(events[:6])])
    first = PartitionEvaluators(Recording, states, "g")
    sink, _, _ = make_sink(tmp_path, log, first_consumer, partitions=first)
    original_commit = first_consumer.commit

    def commit(offsets: Any, asynchronous: bool = False) -> None:
        saved = states.load("g", ACTIONS, 0)  # the snapshot is on disk before the offset moves
        assert saved is not None and saved.offset == 6 and len(saved.state.split(b",")) == 6
        original_commit(offsets)

    first_consumer.commit = commit  # type: ignore[method-assign]  # a spy on the commit order
    assert sink.run_once().committed == {(ACTIONS, 0): 6}
    first_consumer.revoke()

    # The next owner is re-delivered from offset 4 (say the commit of 6 was lost): 4 and 5 are not judged again.
    log2: list = []
    second = PartitionEvaluators(Recording, states, "g")
    other, _, store = make_sink(tmp_path, log2, FakeConsumer(log2, [(ACTIONS, 0)], [messages(events[4:], first=4)]),
                                partitions=second)
    assert other.run_once().committed == {(ACTIONS, 0): 10}
    assert second.restored == 1
    assert second.get(ACTIONS, 0).seen == [r["event_id"] for r, _ in events]  # each event once, in order
    assert len(store.rows("actions")) == 6  # stored again (the store deduplicates by token), judged once


def test_a_snapshot_of_another_revision_is_not_restored(tmp_path: Path):
    states = PartitionStateStore(tmp_path)
    states.save("g", ACTIONS, 0, SavedState(5, "old-revision", b"x,y"))
    evaluators = PartitionEvaluators(Recording, states, "g")
    assert evaluators.assign(ACTIONS, 0) is None
    assert evaluators.get(ACTIONS, 0).seen == []


def test_a_torn_snapshot_is_moved_aside_and_the_partition_starts_fresh(tmp_path: Path):
    states = PartitionStateStore(tmp_path)
    states.save("g", ACTIONS, 0, SavedState(5, "r1", b"a,b,c"))
    path = states.file("g", ACTIONS, 0)
    path.write_bytes(path.read_bytes()[:-2])
    assert states.load("g", ACTIONS, 0) is None
    assert not path.exists() and len(list(path.parent.glob("*.corrupt-*"))) == 1


@pytest.mark.parametrize("fail", ["flush", "snapshot"])
def test_a_failed_flush_or_snapshot_commits_nothing(tmp_path: Path, fail: str):
    from agentaudit.consumers.checkpoint import Checkpoint
    from agentaudit.consumers.exceptions import ConsumerError

    steps: list[str] = []

    def step(name: str) -> Any:
        def run(*_: Any) -> None:
            steps.append(name)
            if name == fail:
                raise ConsumerError(name)
        return run

    checkpoint = Checkpoint(step("commit"), flush=[step("flush")], snapshot=step("snapshot"))
    checkpoint.store_offset("t", 0, 5)
    with pytest.raises(ConsumerError):
        checkpoint.commit()
    assert "commit" not in steps and steps[-1] == fail
