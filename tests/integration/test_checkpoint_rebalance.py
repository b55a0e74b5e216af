"""Inline rule state follows a partition across a real rebalance in the middle of a window.

Two sinks share one group on the embedded broker. The first judges half of a window (below the
rule's threshold), the second joins and the first leaves, so the partition moves; the second
half is judged by the new owner. Its incidents must equal those of one uninterrupted sink over
the same log (the new owner restored the window the first one checkpointed), with no event
counted twice and every action stored once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.rule_state import PartitionEvaluators, PartitionStateStore
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.kafka import KafkaAdmin, KafkaProducer
from agentaudit.rules import load_evaluator
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.sink_support import framed_events, tool_burst_rules

pytestmark = [pytest.mark.integration, pytest.mark.broker]

RULES = tool_burst_rules(threshold=30, window="10m")
EVENTS = 40  # one window; the threshold (30) is crossed only in the second half


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


class Running:
    """A sink with partitioned rule state, run in its own thread until :meth:`stop`."""

    def __init__(self, kafka: KafkaSettings, store: StoreSettings, group: str, rules: Path, state: Path) -> None:
        self.partitions = PartitionEvaluators(lambda: load_evaluator([str(rules)]), PartitionStateStore(state), group)
        settings = SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000,
                                batch_timeout_ms=200, batch_size=7, digests=False, auto_offset_reset="earliest")
        self.sink = Sink(kafka, store, settings, partitions=self.partitions)
        # Set once the group has assigned this sink its share (perhaps none): it has joined. On tansu a member
        # that leaves while another one's join is still pending leaves that join waiting for the rebalance
        # timeout (max.poll.interval.ms, 300 s), so the test lets the first sink go only after the join.
        self.joined = threading.Event()
        assign = self.sink._on_assign  # the sink's own callback, which still runs first

        def on_assign(consumer: Any, partitions: list[Any]) -> None:
            assign(consumer, partitions)
            self.joined.set()

        self.sink._on_assign = on_assign  # type: ignore[method-assign]  # the sink subscribes with it when it starts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.sink.run, args=(self._stop,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive()


def produce(kafka: KafkaSettings, events: list[tuple[dict, bytes]]) -> None:
    with KafkaProducer(kafka) as producer:
        for record, data in events:
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())
        producer.flush()


def committed(kafka: KafkaSettings, group: str) -> int:
    return KafkaAdmin(kafka).committed_offsets(group, [kafka.topics.actions]).get((kafka.topics.actions, 0)) or 0


def incidents(store: Store) -> dict[str, tuple[str, int]]:
    rows = store.query("SELECT incident_id, rule_id, max(count) FROM incidents GROUP BY incident_id, rule_id").rows
    return {row[0]: (row[1], int(row[2])) for row in rows}


def actions(store: Store) -> tuple[int, int]:
    return tuple(store.query("SELECT count(), count(DISTINCT event_id) FROM actions FINAL").rows[0])


def test_rule_state_follows_the_partition_to_the_next_sink_mid_window(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory,
    store_settings_factory: Callable[[], StoreSettings], tmp_path: Path,
):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    events = framed_events(EVENTS, stream_id="s-burst", agent_id="bot-1")
    kafka = kafka_settings_factory(partitions=1)
    produce(kafka, events[:EVENTS // 2])

    moved_store, reference_store = store_settings_factory(), store_settings_factory()
    migrate(moved_store)
    migrate(reference_store)
    group, state = group_factory("moved"), tmp_path / "state"  # one state directory both sinks reach

    first = Running(kafka, moved_store, group, rules, state)
    second = None
    try:
        wait_until(lambda: committed(kafka, group) == EVENTS // 2, 60, "the first sink to commit the first half")
        second = Running(kafka, moved_store, group, rules, state)
        # the second sink joins: a rebalance while the first one still holds the window
        wait_until(second.joined.is_set, 60, "the second sink to join the group")
        first.stop()  # the partition now moves to the second sink, whichever held it after the join
        wait_until(lambda: bool(second.sink.assignment), 60, "the second sink to get the partition")
        produce(kafka, events[EVENTS // 2:])
        wait_until(lambda: committed(kafka, group) == EVENTS, 60, "the second sink to commit the second half")
        time.sleep(1)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert second.partitions.restored >= 1  # it resumed the first sink's checkpointed window

    reference = Running(kafka, reference_store, group_factory("reference"), rules, tmp_path / "reference-state")
    try:
        wait_until(lambda: committed(kafka, reference.sink.settings.group) == EVENTS, 60, "the reference sink")
        time.sleep(1)
    finally:
        reference.stop()

    with connect(moved_store) as moved, connect(reference_store) as single:
        expected = incidents(single)
        assert list(expected.values()) == [("test.tool-burst", EVENTS)]  # every event counted once
        assert incidents(moved) == expected
        assert actions(moved) == actions(single) == (EVENTS, EVENTS)
