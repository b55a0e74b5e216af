"""Aggregates over sliding and tumbling windows: each event counts once in every window that covers it,
and the answer does not depend on batching, interleaving or a restart from a snapshot."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import interleave, replay
from agentaudit.schemas import Incident
from tests.synthetic_fleet import fleet_records

HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000

_RULE = """
  - id: test.{name}
    desc: >
      test
    condition: phase != start
    aggregate: {{{agg}}}
    by: [agent_id]
    window: {window}
    output: "{{agent_id}} {{value}}"
    severity: low
    tags: [sandbox]
"""


def _rules(tmp_path: Path) -> Path:
    specs = []
    for fn, extra in (("count", ""), ("sum", ", field: cost_usd"), ("avg", ", field: cost_usd"),
                      ("min", ", field: cost_usd"), ("max", ", field: cost_usd"), ("distinct", ", field: name"),
                      ("rate", ""), ("ratio", ", where: 'status = error'")):
        for window, slide in (("5m", None), ("5m", "1m"), ("1m", "20s")):
            for op, threshold in ((">", 0.5), ("<", 1e9)):
                agg = f"fn: {fn}, threshold: {threshold}, op: '{op}'{extra}"
                agg += f", slide: {slide}" if slide else ""
                agg += ", min_count: 2" if op == "<" else ""
                name = f"{fn}-{window}-{slide or 'tumbling'}-{'above' if op == '>' else 'below'}"
                specs.append(_RULE.format(name=name, agg=agg, window=window))
    path = tmp_path / "aggregates.yaml"
    path.write_text("required_engine_version: 1\n\nrules:\n" + "".join(specs))
    return path


@pytest.fixture(scope="module")
def rule_set(tmp_path_factory):
    return load_rule_set([str(_rules(tmp_path_factory.mktemp("rules")))])


@pytest.fixture(scope="module")
def records():
    return fleet_records(3000, agents=6, seed=5)


def digest(incidents: list[Incident]) -> str:
    return hashlib.sha256("\n".join(sorted(i.model_dump_json() for i in incidents)).encode()).hexdigest()


@pytest.mark.parametrize(("seed", "batch_size"), [(0, 1), (1, 13), (2, 500)])
def test_batching_and_interleaving_do_not_change_aggregates(rule_set, records, seed, batch_size) -> None:
    reference = replay(RuleEvaluator(rule_set, lateness_us=HOUR_US), records)
    shuffled = interleave(records, random.Random(seed))
    got = replay(RuleEvaluator(rule_set, lateness_us=HOUR_US), shuffled, batch_size=batch_size)
    assert {i.rule_id.split("-")[0] for i in reference} >= {"test.count", "test.sum", "test.distinct", "test.ratio"}
    assert digest(got) == digest(reference)


def test_a_restart_from_a_snapshot_gives_the_same_aggregates(rule_set, records) -> None:
    reference = replay(RuleEvaluator(rule_set), records, batch_size=300)
    first = RuleEvaluator(rule_set)
    incidents = [i for s in range(0, 1200, 300) for i in first.evaluate(records[s:s + 300])]
    second = RuleEvaluator(rule_set)
    second.restore(first.snapshot())
    incidents += [i for s in range(1200, len(records), 300) for i in second.evaluate(records[s:s + 300])]
    incidents += second.flush()
    latest = {i.incident_id: i for i in incidents}
    assert digest(list(latest.values())) == digest(reference)


def test_an_event_counts_once_in_every_sliding_window_that_covers_it(tmp_path, records) -> None:
    path = tmp_path / "slide.yaml"
    path.write_text("required_engine_version: 1\n\nrules:\n" + _RULE.format(
        name="slide", agg="fn: count, threshold: 0, slide: 1m", window="3m"))
    template = dict(records[0], phase="end")
    base = 1_000 * MINUTE_US
    times = [base + 10, base + MINUTE_US + 5, base + 2 * MINUTE_US + 7, base + 2 * MINUTE_US + 3]
    events = [dict(template, event_id=f"e{i}", event_time_us=t) for i, t in enumerate(times)]
    evaluator = RuleEvaluator(load_rule_set([str(path)]))
    latest = {i.incident_id: i for i in evaluator.evaluate(events[:2]) + evaluator.evaluate(events[2:])}
    latest.update({i.incident_id: i for i in evaluator.flush()})
    by_start = {i.window_start_us: i for i in latest.values()}
    assert sorted(by_start) == [base + k * MINUTE_US for k in range(-2, 3)]
    assert {ws - base: by_start[ws].count for ws in by_start} == {
        -2 * MINUTE_US: 1, -MINUTE_US: 2, 0: 4, MINUTE_US: 3, 2 * MINUTE_US: 2}
    middle = by_start[base]
    assert middle.event_ids == ("e0", "e1", "e3", "e2")  # smallest (time, id) first
    assert (middle.first_seen_us, middle.last_seen_us) == (times[0], times[2])


@pytest.mark.parametrize("fn", ["min", "max", "avg", "sum"])
def test_aggregates_over_an_integer_field_compare_with_the_threshold(tmp_path: Path, records, fn: str) -> None:
    """``latency_us`` is an Avro long: its min/max stay ints, and the threshold test must still work."""
    spec = _RULE.format(name=f"{fn}-latency", agg=f"fn: {fn}, field: latency_us, threshold: 1, op: '>'",
                        window="5m")
    path = tmp_path / "latency.yaml"
    path.write_text("required_engine_version: 1\n\nrules:\n" + spec)
    ended = [r for r in records if r["latency_us"] is not None]
    assert ended, "the fleet has no ended actions to aggregate"
    incidents = replay(RuleEvaluator(load_rule_set([str(path)])), ended)
    assert incidents, f"{fn}(latency_us) > 1 raised no incident"
    assert all(float(i.summary.split()[-1]) > 1 for i in incidents)
