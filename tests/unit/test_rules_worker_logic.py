"""The rules worker's logic without a broker: re-key copies, idle markers and the judges' watermark.

In-memory clients are given to its constructor; what the re-key loop produces is fed to the
evaluate loop as the repartition topic would deliver it. The same on the real broker:
tests/integration/test_rules_worker.py and test_rules_worker_idle.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agentaudit.consumers.rules_worker import (
    COPIES_HEADER,
    KEY_CLASS_HEADER,
    MARKER_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    RulesWorker,
    StateDirectory,
)
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.schemas import AvroCodec
from agentaudit.settings import KafkaSettings
from tests.consumer_fakes import FakeAdmin, FakeConsumer, FakeMessage, FakeProducer
from tests.sink_support import action_record, tool_burst_rules

KAFKA = KafkaSettings(bootstrap_servers="unused:9092")
T = KAFKA.topics
LATENESS_US = 1_000_000
RULES = tool_burst_rules(threshold=3, window="1m")


def make_worker(tmp_path: Path, log: list, **kwargs: Any) -> tuple[RulesWorker, FakeConsumer, FakeConsumer,
                                                                     FakeProducer]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    rekey = FakeConsumer(log, [(T.actions, 0), (T.actions, 1)])
    judge = FakeConsumer(log, [(T.repartition, 0)])
    producer = FakeProducer(log)
    worker = RulesWorker(KAFKA, RuleEvaluator(load_rule_set(str(rules)), lateness_us=LATENESS_US), group="g",
                         rekey_consumer=rekey, judge_consumer=judge, producer=producer, admin=FakeAdmin(2), **kwargs)
    return worker, rekey, judge, producer


def actions(partition: int, count: int, first_offset: int = 0) -> list[FakeMessage]:
    codec = AvroCodec("action")
    return [FakeMessage(T.actions, partition, first_offset + n,
                        codec.encode(action_record(n, agent_id="bot", stream_id=f"s-{partition}")), b"s")
            for n in range(count)]


def as_repartition(sent: list[dict[str, Any]], first_offset: int = 0) -> list[FakeMessage]:
    """What the judges read: the re-key loop's copies and the markers for repartition partition 0."""
    out = []
    for m in sent:
        if m["topic"] != T.repartition or m["partition"] not in (None, 0):
            continue
        headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in m["headers"].items()]
        out.append(FakeMessage(T.repartition, 0, first_offset + len(out), m["value"], m["key"], headers))
    return out


def test_rekey_copies_each_action_keyed_by_its_rules_key_class_with_its_source_then_commits_after_the_flush(
        tmp_path: Path):
    log: list = []
    worker, rekey, _, producer = make_worker(tmp_path, log, idle_timeout_ms=0)
    batch = actions(1, 3)
    rekey.batches.append(batch)

    assert worker.rekey_once() == 3

    copies = producer.on(T.repartition)
    assert [c["value"] for c in copies] == [m.value() for m in batch]
    assert {c["key"] for c in copies} == {b"agent_id\x1facme\x1fbot"}  # the rule's by: [agent_id], in its tenant
    assert all(c["headers"][SOURCE_TOPIC_HEADER] == T.actions and c["headers"][SOURCE_PARTITION_HEADER] == "1"
               and c["headers"][KEY_CLASS_HEADER] == "agent_id" and c["headers"][COPIES_HEADER] == "1"
               for c in copies)
    assert [entry[0] for entry in log if entry[0] in ("flush", "commit")] == ["flush", "commit"]
    assert rekey.commits == [{(T.actions, 1): 3}]


def test_a_source_read_to_its_end_and_quiet_for_the_idle_timeout_gets_an_idle_marker(tmp_path: Path):
    log: list = []
    worker, rekey, _, producer = make_worker(tmp_path, log, idle_timeout_ms=50)
    rekey.ends = {(T.actions, 0): 3, (T.actions, 1): 0}  # partition 1 is empty
    rekey.batches.append(actions(0, 3))
    worker.rekey_once()
    assert not [m for m in producer.sent if m["headers"].get(MARKER_HEADER) == "idle"]  # not quiet long enough

    time.sleep(0.08)
    worker.rekey_once()

    idle = [m for m in producer.sent if m["headers"].get(MARKER_HEADER) == "idle"]
    sources = {(m["headers"][SOURCE_PARTITION_HEADER], m["partition"]) for m in idle}
    assert ("1", 0) in sources and ("1", 1) in sources  # every repartition partition hears of it
    assert all(m["value"] is None for m in idle)


def test_the_judges_watermark_waits_for_a_silent_source_until_it_is_marked_idle(tmp_path: Path):
    log: list = []
    worker, rekey, judge, producer = make_worker(tmp_path, log, idle_timeout_ms=50)
    rekey.ends = {(T.actions, 0): 10, (T.actions, 1): 0}  # source 0 has more to read: never idle
    rekey.batches.append(actions(0, 3))
    worker.rekey_once()
    copies = as_repartition(producer.sent)
    judge.batches.append(copies)
    incidents = worker.judge_once()
    evaluator = worker._evaluators[0]
    assert evaluator.watermark_us == 0  # source 1 delivered nothing: every window stays open
    assert [i.count for i in incidents] == [3]  # a threshold crossing needs no watermark

    time.sleep(0.08)
    producer.sent.clear()
    worker.rekey_once()  # now source 1 is idle
    markers = as_repartition(producer.sent, first_offset=len(copies))
    judge.batches.append(markers)
    worker.judge_once()

    last = max(action_record(n)["event_time_us"] for n in range(3))
    assert evaluator.watermark_us == last - LATENESS_US  # only source 0 holds it now
    assert judge.commits == [{(T.repartition, 0): len(copies)}, {(T.repartition, 0): len(copies) + len(markers)}]


def test_state_is_snapshotted_with_its_offset_before_the_commit(tmp_path: Path):
    log: list = []
    state = StateDirectory(tmp_path / "state")
    worker, rekey, judge, producer = make_worker(tmp_path, log, idle_timeout_ms=0, state=state,
                                                 snapshot_interval_s=0)
    rekey.batches.append(actions(0, 3))
    worker.rekey_once()
    judge.batches.append(as_repartition(producer.sent))
    seen: list[Any] = []
    original = judge.commit

    def commit(offsets: Any, asynchronous: bool = False) -> None:
        seen.append(state.load("g", T.repartition, 0))  # on disk before the offset moves
        original(offsets)

    judge.commit = commit  # type: ignore[method-assign]  # a spy on the commit order
    worker.judge_once()

    assert seen[0] is not None and seen[0][0] == 3
    assert judge.commits == [{(T.repartition, 0): 3}]
