"""Idle source partitions: when the re-key stage calls one idle, and what the judging evaluator does with it."""

from __future__ import annotations

import zlib

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules._idleness import IDLE, PROGRESS, SourceIdleness
from tests.synthetic_fleet import fleet_records
from agentaudit.rules.harness import build_events

RULES = load_rule_set(None)
SOURCES = ("actions:0", "actions:1", "actions:2")
MIN = 60_000_000


class TestSourceIdleness:
    def test_quiet_and_read_to_its_end_is_idle_after_the_timeout(self) -> None:
        idleness = SourceIdleness(5.0)
        idleness.assign("actions:0", now=0.0)
        idleness.delivered("actions:0", next_offset=10, event_time_us=7, now=1.0)
        assert idleness.markers(now=1.0, ends={"actions:0": 10}) == [("actions:0", PROGRESS, 7)]
        assert idleness.markers(now=5.9, ends={"actions:0": 10}) == []  # 4.9 s quiet
        assert idleness.markers(now=6.0, ends={"actions:0": 10}) == [("actions:0", IDLE, 7)]
        assert idleness.idle() == ["actions:0"]
        assert idleness.markers(now=60.0, ends={"actions:0": 10}) == []  # said once

    def test_unread_records_are_never_idle(self) -> None:
        idleness = SourceIdleness(5.0)
        idleness.assign("actions:0", now=0.0)
        idleness.delivered("actions:0", next_offset=10, event_time_us=7, now=1.0)
        idleness.markers(now=1.0, ends={"actions:0": 10})
        assert idleness.markers(now=100.0, ends={"actions:0": 11}) == []  # one record left to read
        assert idleness.markers(now=100.0, ends={}) == []  # end not known yet

    def test_nothing_delivered_needs_the_read_position(self) -> None:
        idleness = SourceIdleness(5.0)
        idleness.assign("actions:1", now=0.0)
        assert idleness.unpositioned(now=4.0) == []
        assert idleness.unpositioned(now=5.0) == ["actions:1"]
        assert idleness.markers(now=5.0, ends={"actions:1": 0}) == []  # position unknown: not idle
        idleness.set_position("actions:1", 0)
        assert idleness.markers(now=5.0, ends={"actions:1": 0}) == [("actions:1", IDLE, None)]

    def test_delivering_again_wakes_it_at_once(self) -> None:
        idleness = SourceIdleness(5.0)
        idleness.assign("actions:0", now=0.0, position=3)
        assert idleness.markers(now=5.0, ends={"actions:0": 3}) == [("actions:0", IDLE, None)]
        idleness.delivered("actions:0", next_offset=4, event_time_us=9, now=5.1)
        assert idleness.idle() == []
        assert idleness.markers(now=5.1, ends={"actions:0": 4}) == [("actions:0", PROGRESS, 9)]

    def test_progress_at_most_once_per_interval_and_only_when_it_grew(self) -> None:
        idleness = SourceIdleness(5.0)  # interval min(1 s, timeout)
        idleness.assign("actions:0", now=0.0)
        idleness.delivered("actions:0", next_offset=1, event_time_us=100, now=0.0)
        assert idleness.markers(now=0.0, ends={}) == [("actions:0", PROGRESS, 100)]
        idleness.delivered("actions:0", next_offset=2, event_time_us=200, now=0.5)
        assert idleness.markers(now=0.5, ends={}) == []
        assert idleness.markers(now=1.0, ends={}) == [("actions:0", PROGRESS, 200)]
        idleness.delivered("actions:0", next_offset=3, event_time_us=150, now=2.5)  # older: no news
        assert idleness.markers(now=2.5, ends={}) == []

    def test_timeout_zero_sends_nothing(self) -> None:
        idleness = SourceIdleness(0)
        idleness.assign("actions:0", now=0.0, position=0)
        assert idleness.markers(now=100.0, ends={"actions:0": 0}) == []


def hung_call_log() -> list[dict]:
    """actions:0 carries a tool call that never returns and then 20 minutes of traffic; the others nothing."""
    events = build_events([
        {"t": 0, "kind": "execute_tool", "name": "search", "phase": "start", "action_id": "hung"},
        {"t": "20m", "kind": "chat", "phase": "end"},
    ], "idle")
    return [{**r, "_source": SOURCES[0]} for r in events]


def hung(incidents) -> list:
    return [i for i in incidents if i.rule_id == "load.hung-tool-call"]


class TestEvaluatorMarkers:
    def test_quiet_sources_hold_the_window_until_marked_idle(self) -> None:
        evaluator = RuleEvaluator(RULES, lateness_us=MIN, sources=SOURCES)
        assert hung(evaluator.evaluate(hung_call_log())) == []
        idle = [{"_marker": "idle", "_source": s} for s in SOURCES[1:]]
        fired = hung(evaluator.evaluate(idle))
        assert len(fired) == 1 and fired[0].count == 1
        assert evaluator.watermark_us == hung_call_log()[-1]["event_time_us"] - MIN

    def test_progress_moves_a_source_that_carries_nothing_here(self) -> None:
        evaluator = RuleEvaluator(RULES, lateness_us=MIN, sources=SOURCES)
        evaluator.evaluate(hung_call_log())
        t = hung_call_log()[-1]["event_time_us"]
        assert hung(evaluator.evaluate([{"_marker": "progress", "_source": SOURCES[1], "event_time_us": t}])) == []
        fired = evaluator.evaluate([{"_marker": "progress", "_source": SOURCES[2], "event_time_us": t + MIN}])
        assert len(hung(fired)) == 1

    def test_an_idle_source_that_delivers_again_holds_the_watermark_again(self) -> None:
        evaluator = RuleEvaluator(RULES, lateness_us=0, sources=SOURCES[:2])
        start = hung_call_log()[0]["event_time_us"]
        evaluator.evaluate([{"_marker": "idle", "_source": SOURCES[1], "event_time_us": start}])
        evaluator.evaluate(hung_call_log()[:1])
        assert evaluator.watermark_us == start  # source 1 idle: source 0 alone
        back = {**hung_call_log()[1], "event_id": "back", "_source": SOURCES[1], "event_time_us": start + MIN}
        evaluator.evaluate([back, {**hung_call_log()[1], "event_time_us": start + 30 * MIN}])
        assert evaluator.watermark_us == start + MIN  # held by source 1's latest event again

    def test_every_source_idle_takes_the_largest(self) -> None:
        evaluator = RuleEvaluator(RULES, lateness_us=0, sources=SOURCES[:2])
        evaluator.evaluate(hung_call_log()[:1])
        evaluator.evaluate([{"_marker": "idle", "_source": SOURCES[1], "event_time_us": 5}])
        start = hung_call_log()[0]["event_time_us"]
        assert evaluator.watermark_us == start
        evaluator.evaluate([{"_marker": "idle", "_source": SOURCES[0], "event_time_us": start + 10 * MIN}])
        assert evaluator.watermark_us == start + 10 * MIN

    def test_snapshot_keeps_idle_sources(self) -> None:
        evaluator = RuleEvaluator(RULES, lateness_us=MIN, sources=SOURCES)
        evaluator.evaluate(hung_call_log()[:1] + [{"_marker": "idle", "_source": s} for s in SOURCES[1:]])
        restored = RuleEvaluator(RULES, lateness_us=MIN, sources=SOURCES)
        restored.restore(evaluator.snapshot())
        assert len(hung(restored.evaluate(hung_call_log()[1:]))) == 1


def test_idle_markers_after_each_source_end_do_not_depend_on_interleaving() -> None:
    """As the worker places them: a source's idle marker behind its last event. Any interleaving, same incidents."""
    records = fleet_records(1500, agents=8, tenants=2, seed=11, pace=20)
    parts: list[list[dict]] = [[] for _ in SOURCES]
    for r in records:
        p = zlib.crc32(r["stream_id"].encode()) % len(SOURCES)
        parts[p].append({**r, "_source": SOURCES[p]})
    for p, part in enumerate(parts):
        part.append({"_marker": "idle", "_source": SOURCES[p], "event_time_us": part[-1]["event_time_us"]})

    def judge(log: list[dict]) -> dict[str, str]:
        evaluator = RuleEvaluator(RULES, lateness_us=0, sources=SOURCES)
        latest: dict[str, str] = {}
        for start in range(0, len(log), 100):
            for incident in evaluator.evaluate(log[start:start + 100]):
                latest[incident.incident_id] = incident.model_dump_json()
        return latest

    one_after_another = judge([r for part in parts for r in part])
    round_robin = judge([part[i] for i in range(max(map(len, parts))) for part in parts if i < len(part)])
    assert any('"load.hung-tool-call"' in v for v in one_after_another.values()), "no hung call decided"
    assert round_robin == one_after_another
