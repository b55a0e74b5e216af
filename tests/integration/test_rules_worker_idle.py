"""A quiet actions partition on a real broker: idle after the timeout, so a hung call's absence still fires."""

from __future__ import annotations

import time

import pytest

from agentaudit.consumers.rules_worker import RulesWorker, StateDirectory
from agentaudit.infra.kafka import KafkaProducer
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import build_events
from agentaudit.schemas import AvroCodec
from tests.fixtures.broker import test_consumer_config

pytestmark = [pytest.mark.integration, pytest.mark.broker]

RULES = load_rule_set(None)
HUNG = "load.hung-tool-call"  # absence within 5m


def traffic(name: str, agent: str, minutes: range, hung_at: int | None = None) -> list[dict]:
    """One agent's stream: a chat every minute, and a tool call that never returns at ``hung_at``."""
    raw = [{"t": 60 * m, "kind": "chat", "phase": "end", "agent_id": agent} for m in minutes]
    if hung_at is not None:
        raw.insert(0, {"t": 60 * hung_at, "kind": "execute_tool", "name": "search", "phase": "start",
                       "agent_id": agent, "action_id": f"hung-{name}"})
    return build_events(sorted(raw, key=lambda e: e["t"]), name)


def produce(kafka, partition: int, records: list[dict]) -> None:
    codec = AvroCodec("action")
    with KafkaProducer(kafka) as producer:
        for r in records:
            record = {k: v for k, v in r.items() if k not in ("event_hash", "_partition", "_offset")}
            producer.produce(kafka.topics.actions, codec.encode(record), key=record["stream_id"].encode(),
                             partition=partition)
        producer.flush()


def worker(kafka, group: str, idle_timeout_ms: int, state: StateDirectory | None = None) -> RulesWorker:
    return RulesWorker(kafka, RuleEvaluator(RULES), group=group, batch_size=200, state=state,
                       consumer_config=test_consumer_config(**{"auto.offset.reset": "earliest"}),
                       idle_timeout_ms=idle_timeout_ms)


def run_until(workers: list[RulesWorker], done, limit: float) -> float:
    began = time.monotonic()
    while not done():
        for w in workers:
            w.run_once()
        assert time.monotonic() - began < limit, f"not within {limit}s: evaluated {[w.evaluated for w in workers]}"
    return time.monotonic() - began


def hung(w: RulesWorker) -> list:
    return [i for i in w.incidents.values() if i.rule_id == HUNG]


def test_quiet_partition_goes_idle_and_the_hung_call_fires(kafka_settings_factory, group_factory) -> None:
    # Partitions 0 and 1 carry 10 minutes of traffic, a call on 0 never returns; partition 2 stays empty.
    records = (traffic("p0", "agent-1", range(1, 11), hung_at=0), traffic("p1", "agent-2", range(11)))
    idle_on, idle_off = kafka_settings_factory(partitions=3), kafka_settings_factory(partitions=3)
    for kafka in (idle_on, idle_off):
        for partition, part in enumerate(records):
            produce(kafka, partition, part)
    on, off = worker(idle_on, group_factory("idle"), 1000), worker(idle_off, group_factory("never"), 0)
    try:
        total = sum(map(len, records))  # the idle-off group may join later than the other: wait for both
        took = run_until([on, off], lambda: bool(hung(on)) and off.evaluated >= total, 45)
        assert off.evaluated == on.evaluated == total
        assert hung(off) == [], "without idleness the empty partition holds the window open"
        assert [(i.agent_id, i.count) for i in hung(on)] == [("agent-1", 1)]
        print(f"\n[idle] hung-call incident {took:.1f}s after start (group join + 1 s idle timeout)")
    finally:
        on.close()
        off.close()


def test_stop_keeps_open_windows_for_the_restart(kafka_settings_factory, group_factory, tmp_path) -> None:
    """A clean stop fires nothing the watermark has not closed; the restarted worker decides it."""
    kafka = kafka_settings_factory(partitions=2)
    group = group_factory("restart")
    state = StateDirectory(tmp_path / "state")
    produce(kafka, 0, traffic("a", "agent-1", range(1, 3), hung_at=0))  # up to 2m: the 5m deadline not reached
    first = worker(kafka, group, 500, state)
    try:
        run_until([first], lambda: first.evaluated == 3 and first.idleness.idle(), 30)
        time.sleep(0.6)
        for _ in range(5):  # idle markers judged: the watermark is 2m - 30 s, short of the deadline
            first.run_once()
        assert hung(first) == []
    finally:
        first.close()  # commits and snapshots; fires nothing
    assert hung(first) == []
    produce(kafka, 1, traffic("b", "agent-2", range(3, 9)))
    second = worker(kafka, group, 500, state)
    try:
        run_until([second], lambda: bool(hung(second)), 30)
        assert second.evaluated == 6, "resumed at the committed offsets"
        assert [(i.agent_id, i.count) for i in hung(second)] == [("agent-1", 1)]
    finally:
        second.close()
