"""Idle source partitions: when the re-key stage calls one idle, and what the judging evaluator does with it."""

from __future__ import annotations

import zlib

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules._idleness import IDLE, PROGRESS, SourceIdleness
from agentaudit.rules.event_time import EventTimePolicy, QuietTenants
from agentaudit.rules.harness import build_events
from tests.synthetic_fleet import fleet_records

RULES = load_rule_set(None)
SOURCES = ("actions:0", "actions:1", "actions:2")
MIN = 60_000_000


class TestSourceIdleness:
    def test_quiet_and_read_to_its_end_is_idle_after_the_timeout(self) -> None:
        idleness = SourceIdleness(5.0)
        idleness.assign("actions:0", now=0.0)
        idleness.delivered("actions:0", next_offset=10, event_time_us=7, now=1.0)
        assert idleness.markers(now=1.0, ends={"actions:0": 10}) == [("actions:0", PROGRESS, 7, None)]
        assert idleness.markers(now=5.9, ends={"actions:0": 10}) == []  # 4.9 s quiet
        assert idleness.markers(now=6.0, ends={"actions:0": 10}) == [("actions:0", IDLE, 7, 5_000_000)]
        assert idleness.idle() == ["actions:0"]
        assert idleness.markers(now=6.5, ends={"actions:0": 10}) == []  # repeated at most once a second
        # ... with the time it has been quiet, so that event time moves on while nothing arrives
        assert idleness.markers(now=60.0, ends={"actions:0": 10}) == [("actions:0", IDLE, 7, 59_000_000)]

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
        assert idleness.markers(now=5.0, ends={"actions:1": 0}) == [("actions:1", IDLE, None, 5_000_000)]

    def test_delivering_again_wakes_it_at_once(self) -> None:
        idleness = SourceIdleness(5.0)
        idleness.assign("actions:0", now=0.0, position=3)
        assert idleness.markers(now=5.0, ends={"actions:0": 3}) == [("actions:0", IDLE, None, 5_000_000)]
        idleness.delivered("actions:0", next_offset=4, event_time_us=9, now=5.1)
        assert idleness.idle() == []
        assert idleness.markers(now=5.1, ends={"actions:0": 4}) == [("actions:0", PROGRESS, 9, None)]

    def test_progress_at_most_once_per_interval_and_only_when_it_grew(self) -> None:
        idleness = SourceIdleness(5.0)  # interval min(1 s, timeout)
        idleness.assign("actions:0", now=0.0)
        idleness.delivered("actions:0", next_offset=1, event_time_us=100, now=0.0)
        assert idleness.markers(now=0.0, ends={}) == [("actions:0", PROGRESS, 100, None)]
        idleness.delivered("actions:0", next_offset=2, event_time_us=200, now=0.5)
        assert idleness.markers(now=0.5, ends={}) == []
        assert idleness.markers(now=1.0, ends={}) == [("actions:0", PROGRESS, 200, None)]
        idleness.delivered("actions:0", next_offset=3, event_time_us=150, now=2.5)  # older: no news
        assert idleness.markers(now=2.5, ends={}) == []

    def test_only_the_idle_source_with_the_largest_time_repeats(self) -> None:
        idleness = SourceIdleness(4.0)  # repeats every 2 s
        for name, t in (("actions:0", 7), ("actions:1", 9)):
            idleness.assign(name, now=0.0)
            idleness.delivered(name, next_offset=1, event_time_us=t, now=0.0)
        idleness.assign("actions:2", now=0.0, position=0)  # nothing since the assignment (a restart)
        idleness.markers(now=0.0, ends={})
        ends = {"actions:0": 1, "actions:1": 1, "actions:2": 0}
        assert [m[:2] for m in idleness.markers(now=4.0, ends=ends)] == [
            ("actions:0", IDLE), ("actions:1", IDLE), ("actions:2", IDLE)]
        assert idleness.markers(now=5.9, ends=ends) == []
        assert idleness.markers(now=6.0, ends=ends) == [("actions:1", IDLE, 9, 6_000_000),
                                                         ("actions:2", IDLE, None, 6_000_000)]

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

    def test_every_source_idle_moves_on_with_the_quiet_time(self) -> None:
        """After the last event, nothing else arrives: repeated idle markers still close the deadline."""
        evaluator = RuleEvaluator(RULES, lateness_us=MIN, sources=SOURCES[:2])
        log = hung_call_log()[:1]  # a call that never returns; its deadline is 5m after it, nothing follows
        start = log[0]["event_time_us"]
        evaluator.evaluate(log)
        idle = [{"_marker": "idle", "_source": s, "quiet_us": 5_000_000} for s in SOURCES[:2]]
        assert hung(evaluator.evaluate(idle)) == []
        assert evaluator.watermark_us == start + 5_000_000 - MIN
        quiet_enough = {"_marker": "idle", "_source": SOURCES[0], "quiet_us": 6 * MIN}  # 5m deadline + 1m lateness
        assert len(hung(evaluator.evaluate([quiet_enough]))) == 1
        restored = RuleEvaluator(RULES, lateness_us=MIN, sources=SOURCES[:2])
        restored.restore(evaluator.snapshot())
        assert restored.watermark_us == evaluator.watermark_us == start + 5 * MIN

    def test_quiet_time_counts_only_while_every_source_is_idle(self) -> None:
        evaluator = RuleEvaluator(RULES, lateness_us=0, sources=SOURCES[:2])
        log = hung_call_log()[:1]
        start = log[0]["event_time_us"]
        evaluator.evaluate([*log, {"_marker": "idle", "_source": SOURCES[1], "quiet_us": 60 * MIN}])
        assert evaluator.watermark_us == start  # source 0 still active: its own events hold the watermark
        evaluator.evaluate([{"_marker": "idle", "_source": SOURCES[0], "quiet_us": MIN}])
        assert evaluator.watermark_us == start + MIN  # source 1 delivered nothing: no time to advance from

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


class TestQuietTenants:
    """The inline sink's idleness: per tenant, no source markers (RuleEvaluator without ``sources``)."""

    def test_a_quiet_tenant_closes_its_deadline_without_another_event(self) -> None:
        evaluator = RuleEvaluator(RULES, lateness_us=MIN)
        log = hung_call_log()[:1]
        start, tenant = log[0]["event_time_us"], log[0]["tenant"]
        assert hung(evaluator.evaluate(log)) == []
        assert hung(evaluator.on_watermark(0)) == []  # the tenant's own events: 1m lateness, 5m deadline
        assert hung(evaluator.on_quiet({tenant: 5 * MIN})) == []  # 5m quiet - 1m lateness: short of the deadline
        assert evaluator.watermark_us == start + 4 * MIN
        fired = hung(evaluator.on_quiet({tenant: 6 * MIN}))
        assert [(i.tenant, i.count) for i in fired] == [(tenant, 1)]

    def test_other_tenants_and_not_quiet_ones_keep_their_watermark(self) -> None:
        evaluator = RuleEvaluator(RULES, lateness_us=0)
        log = hung_call_log()[:1]
        other = [{**r, "tenant": "globex", "event_id": "g-" + r["event_id"], "stream_id": "globex/s",
                  "action_id": "g-hung"} for r in log]
        evaluator.evaluate(log + other)
        tenant = log[0]["tenant"]
        fired = hung(evaluator.on_quiet({tenant: 0}, others_us=10 * MIN))  # e.g. globex restored from a snapshot
        assert [i.tenant for i in fired] == ["globex"]
        assert evaluator._marked[tenant] == log[0]["event_time_us"]
        assert evaluator._marked["globex"] == log[0]["event_time_us"] + 10 * MIN

    def test_the_watermark_never_moves_back_when_the_tenant_sends_again(self) -> None:
        evaluator = RuleEvaluator(RULES, lateness_us=0)
        log = hung_call_log()
        tenant = log[0]["tenant"]
        evaluator.evaluate(log[:1])
        evaluator.on_quiet({tenant: 10 * MIN})
        evaluator.evaluate([{**log[1], "event_time_us": log[0]["event_time_us"] + MIN}])
        assert evaluator.watermark_us == log[0]["event_time_us"] + 10 * MIN

    def test_tracker_reports_quiet_tenants_after_the_timeout(self) -> None:
        tracker = QuietTenants(1.0, now=0.0)
        assert tracker.quiet(now=0.5) is None
        tracker.delivered(["acme"], now=0.8)
        assert tracker.quiet(now=1.5) == ({"acme": 0}, 1_500_000)  # acme spoke 0.7 s ago; others quiet since start
        assert tracker.quiet(now=2.0) == ({"acme": 1_200_000}, 2_000_000)
        assert QuietTenants(0, now=0.0).quiet(now=100.0) is None  # timeout 0: never quiet


def test_policy_bound() -> None:
    policy = EventTimePolicy(lateness_us=2_000_000, idle_timeout_us=1_000_000)
    assert policy.quiet_mark(100, quiet_us=999_999) is None
    # The last event's own time is decided once quiet for the lateness (or the idle timeout, if longer).
    assert policy.quiet_mark(100, quiet_us=2_000_000) == 100


def test_settings_read_the_event_time_environment(monkeypatch) -> None:
    from agentaudit.consumers.settings import SinkSettings
    from agentaudit.rules import RulesSettings

    assert (RulesSettings().lateness_ms, RulesSettings().idle_timeout_ms, SinkSettings().idle_timeout_ms) == \
        (30_000, 5_000, 5_000)
    monkeypatch.setenv("AGENTAUDIT_RULES_LATENESS_MS", "2000")
    monkeypatch.setenv("AGENTAUDIT_SINK_IDLE_TIMEOUT_MS", "1000")
    assert (RulesSettings().lateness_ms, SinkSettings().idle_timeout_ms) == (2_000, 1_000)
