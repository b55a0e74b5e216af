"""Event-time alignment of the partitions one inline evaluator reads (consumers/alignment.py), and the
evaluator's watermark ceiling it relies on (``RuleEvaluator.hold``)."""

from __future__ import annotations

from typing import Any

from agentaudit.consumers.alignment import EventTimeAlignment, unread_partitions
from agentaudit.rules import RuleEvaluator, load_rule_set
from tests.synthetic_fleet import fleet_records

A, B, C = ("actions", 0), ("actions", 1), ("actions", 2)
S = 1_000_000


def test_only_unread_partitions_set_the_floor_and_one_without_progress_holds_everything() -> None:
    alignment = EventTimeAlignment(drift_us=30 * S)
    assert alignment.floor([]) is None and alignment.ceiling([], 30 * S) is None
    alignment.delivered(A, 100 * S)
    alignment.delivered(B, 40 * S)
    alignment.delivered(B, 20 * S)  # progress never moves back
    assert alignment.floor([A, B]) == 40 * S
    assert alignment.ceiling([A, B], 30 * S) == 10 * S
    assert alignment.floor([A]) == 100 * S  # B read to its end: it holds nothing back
    held = alignment.ceiling([A, C], 30 * S)  # C has unread events and delivered none yet
    assert held is not None and held < -(2**62)


def test_partitions_too_far_ahead_are_paused_until_the_slowest_catches_up() -> None:
    alignment = EventTimeAlignment(drift_us=30 * S)
    for key, t in ((A, 200 * S), (B, 100 * S), (C, 125 * S)):
        alignment.delivered(key, t)
    assert alignment.plan([A, B, C], 0.0) == ([A], [])  # 100 s behind A; C within the drift
    assert alignment.plan([A, B, C], 1.0) == ([], [])  # already paused
    alignment.delivered(B, 180 * S)
    assert alignment.plan([A, B, C], 2.0) == ([B], [])  # C is the slowest now, and B more than the drift ahead
    alignment.delivered(C, 175 * S)
    assert alignment.plan([A, B, C], 3.0) == ([], [A, B])
    alignment.delivered(A, 400 * S)
    assert alignment.plan([A, B, C], 4.0) == ([A], [])
    assert alignment.plan([B, C], 5.0) == ([], [A])  # A read to its end: its live events are not held back
    assert alignment.plan([], 6.0) == ([], [])  # nothing unread: nothing held back
    alignment.delivered(C, 900 * S)
    assert alignment.plan([B, C], 7.0) == ([C], [])
    alignment.forget(C)
    assert C not in alignment.paused and C not in alignment.progress


def test_the_slowest_unread_partition_is_never_paused() -> None:
    alignment = EventTimeAlignment(drift_us=0)
    for key, t in ((A, 5 * S), (B, 5 * S), (C, 7 * S)):
        alignment.delivered(key, t)
    pause, _ = alignment.plan([A, B, C], 0.0)
    assert pause == [C]
    assert alignment.plan([C], 1.0) == ([], [C])  # A and B read to their end: C is the slowest unread now


def test_unread_means_a_position_unknown_or_before_the_latest_high_watermark() -> None:
    positions = {A: 10, B: 10, C: None}
    assert unread_partitions(positions, {A: 10, B: 11, C: 0}) == [B, C]
    assert unread_partitions({A: 5}, {}) == [A]  # never fetched: not known to be read


def _final(incidents: list[Any], into: dict[str, int]) -> None:
    for incident in incidents:
        into[incident.incident_id] = incident.count


def test_a_held_watermark_keeps_the_windows_of_a_partition_read_late_open() -> None:
    """One partition read whole before the other, as a backlog read unaligned: with the ceiling the
    incidents equal the in-order ones; without it the late partition's events split their windows."""
    records = fleet_records(4000, agents=6, tenants=1, seed=3, pace=20)
    first = [r for r in records if int(r["agent_id"].rsplit("-", 1)[-1]) % 2 == 0]
    second = [r for r in records if int(r["agent_id"].rsplit("-", 1)[-1]) % 2 == 1]
    assert first and second and first[-1]["event_time_us"] - second[0]["event_time_us"] > 3600 * S
    rules = load_rule_set(None)

    in_order: dict[str, int] = {}
    reference = RuleEvaluator(rules)
    _final(reference.evaluate(records), in_order)
    _final(reference.flush(), in_order)

    def skewed(hold: bool) -> dict[str, int]:
        found: dict[str, int] = {}
        evaluator = RuleEvaluator(rules)
        if hold:  # the second partition is unread and has delivered nothing: no watermark moves
            evaluator.hold(-(2**63))
        _final(evaluator.evaluate(first), found)
        evaluator.hold(None)  # both read to their end
        _final(evaluator.evaluate(second), found)
        _final(evaluator.flush(), found)
        return found

    assert len(in_order) > 20
    assert skewed(hold=False) != in_order
    assert skewed(hold=True) == in_order
