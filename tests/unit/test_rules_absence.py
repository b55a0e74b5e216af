"""Absence rules: hung starts decided after their window has ended still add to that window's incident."""

from __future__ import annotations

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import build_events

RULE = """
rules:
  - id: hung-call
    desc: a tool call started and did not end within 5 minutes
    condition: kind = execute_tool and phase = start
    absence: {within: 5m}
    window: 1h
    output: "{name} did not return within {within}"
    severity: high
    tags: [sandbox]
"""


def rules(tmp_path):
    path = tmp_path / "rule.yaml"
    path.write_text(RULE)
    return load_rule_set([str(path)])


def test_count_of_one_incident_only_grows_when_decisions_come_after_the_window(tmp_path) -> None:
    # Three hung calls in the hour [0, 60m): deadlines 55m (inside it), 62m and 63m (after its end).
    events = build_events([
        {"t": "50m", "kind": "execute_tool", "name": "search", "phase": "start", "action_id": "a"},
        {"t": "57m", "kind": "execute_tool", "name": "search", "phase": "start", "action_id": "b"},
        {"t": "58m", "kind": "execute_tool", "name": "search", "phase": "start", "action_id": "c"},
        {"t": "62m", "kind": "chat", "phase": "end"},
        {"t": "63m", "kind": "chat", "phase": "end"},
        {"t": "2h", "kind": "chat", "phase": "end"},
    ], "absence")
    evaluator = RuleEvaluator(rules(tmp_path), lateness_us=0)
    published = [incident for r in events for incident in evaluator.evaluate([r])]
    assert len({i.incident_id for i in published}) == 1, published
    assert [i.count for i in published] == [1, 2, 3]
    assert len(published[-1].event_ids) == 3
    assert evaluator.flush() == []  # the window was closed by the watermark: nothing left to decide


def test_the_window_still_closes_once_its_last_deadline_has_passed(tmp_path) -> None:
    events = build_events([
        {"t": "58m", "kind": "execute_tool", "name": "search", "phase": "start", "action_id": "b"},
        {"t": "64m", "kind": "chat", "phase": "end"},
        {"t": "66m", "kind": "execute_tool", "name": "search", "phase": "start", "action_id": "late"},
    ], "absence-close")
    evaluator = RuleEvaluator(rules(tmp_path), lateness_us=0)
    evaluator.evaluate(events[:2])
    runtime = evaluator.runtimes[0]
    assert runtime.hits.accs, "kept open until end + within (65m)"
    evaluator.evaluate(events[2:])
    assert not runtime.hits.accs, "closed once the watermark passed 65m"
