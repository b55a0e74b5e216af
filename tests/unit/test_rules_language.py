"""Issue 13's rule language: ``sequence ... unless``, ``ancestor ... once: true`` and ``window: trace``.

Each is checked for what it decides, for the same incidents whatever the batch boundaries
(the log is split at every batch size), and across a snapshot and restore at every point.
"""

from __future__ import annotations

import random

import pytest

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.exceptions import RuleError
from agentaudit.rules.harness import build_events, replay

HEAD = """
rules:
  - id: r
    desc: under test
    severity: high
    tags: [sandbox]
"""


def rules_from(tmp_path, body: str):
    path = tmp_path / "rule.yaml"
    path.write_text(HEAD + body)
    return load_rule_set([str(path)])


def summary(incidents) -> list[tuple]:
    return sorted((i.rule_id, i.key, i.count, i.event_ids, i.window_start_us, i.window_end_us, i.summary)
                  for i in incidents)


def every_batching(rule_set, records) -> list[tuple]:
    """The incidents of ``records`` under each batch size 1..len, asserted equal; returns them."""
    reference = summary(replay(RuleEvaluator(rule_set), records))
    for size in range(1, len(records) + 1):
        assert summary(replay(RuleEvaluator(rule_set), records, batch_size=size)) == reference, size
    return reference


def every_restore(rule_set, records) -> None:
    """A snapshot after any prefix, restored into a new evaluator, gives the uninterrupted incidents."""
    reference = summary(replay(RuleEvaluator(rule_set), records, batch_size=1))
    for cut in range(len(records) + 1):
        first = RuleEvaluator(rule_set)
        final = {}
        for r in records[:cut]:
            final.update({i.incident_id: i for i in first.evaluate([r])})
        second = RuleEvaluator(rule_set)
        second.restore(first.snapshot())
        for r in records[cut:]:
            final.update({i.incident_id: i for i in second.evaluate([r])})
        final.update({i.incident_id: i for i in second.flush()})
        assert summary(final.values()) == reference, cut


# -- sequence ... unless ------------------------------------------------------------------------

SEQUENCE = """
    condition: kind = plan
    sequence:
      then: kind = execute_tool and name = "deploy"
      unless: kind = approval
      within: 1h
    output: "deploy after plan {trace_id}"
"""


def seq_events(trace: str, steps: str, t0: int = 0) -> list[dict]:
    """``steps`` letters, one second apart: A (plan), B (deploy), C (approval), x (anything else)."""
    kinds = {"A": {"kind": "plan"}, "B": {"kind": "execute_tool", "name": "deploy"}, "C": {"kind": "approval"},
             "x": {"kind": "chat"}}
    return [{"t": t0 + i, "trace_id": trace, **kinds[s]} for i, s in enumerate(steps)]


@pytest.mark.parametrize(("steps", "fires"), [
    ("AB", True), ("ACB", False), ("CAB", True), ("AxB", True), ("ACAB", True), ("ABCB", True), ("BA", False),
    ("ACxB", False), ("B", False), ("AAB", True),
])
def test_unless_cancels_an_a_with_a_c_between_it_and_b(tmp_path, steps, fires) -> None:
    rules = rules_from(tmp_path, SEQUENCE)
    incidents = replay(RuleEvaluator(rules), build_events(seq_events("t1", steps), "seq"))
    assert bool(incidents) is fires


def test_unless_names_only_the_as_after_the_last_c(tmp_path) -> None:
    records = build_events(seq_events("t1", "ACAAB"), "names")
    (incident,) = replay(RuleEvaluator(rules_from(tmp_path, SEQUENCE)), records)
    assert list(incident.event_ids) == [records[2]["event_id"], records[3]["event_id"], records[4]["event_id"]]


def test_a_c_that_arrives_after_its_b_still_cancels(tmp_path) -> None:
    # a C earlier in event time than B, delivered after it (another stream), within the allowed lateness
    records = build_events(seq_events("t1", "ACB"), "late-c")
    delivered = [records[0], records[2], records[1]]
    assert replay(RuleEvaluator(rules_from(tmp_path, SEQUENCE)), delivered, batch_size=1) == []


def test_without_unless_a_late_c_changes_nothing(tmp_path) -> None:
    body = SEQUENCE.replace("      unless: kind = approval\n", "")
    records = build_events(seq_events("t1", "ACB"), "plain")
    assert len(replay(RuleEvaluator(rules_from(tmp_path, body)), records)) == 1


def _random_sequence_log(seed: int) -> list[dict]:
    rng = random.Random(seed)
    raw = [e for n in range(6) for e in seq_events(f"t{n}", "".join(rng.choice("ABCx") for _ in range(8)), 20 * n)]
    records = build_events(raw, f"mix{seed}")
    # deliver out of order by at most 3 s (well within the 30 s allowed lateness)
    return sorted(records, key=lambda r: r["event_time_us"] + rng.randint(0, 3_000_000))


def test_unless_is_deterministic_under_batching_and_restore(tmp_path) -> None:
    rules = rules_from(tmp_path, SEQUENCE)
    records = _random_sequence_log(1)
    assert every_batching(rules, records)
    every_restore(rules, records)


# -- ancestor ... once: true ---------------------------------------------------------------------

ANCESTOR = """
    condition: kind = execute_tool and phase = start and name = "refund"
    ancestor:
      approval: kind = approval
      within: 1h
      once: true
    by: [trace_id]
    output: "refund in {trace_id}: {detail}"
"""


def anc_events(trace: str, steps: str, t0: int = 0) -> list[dict]:
    """A root, then ``steps`` one second apart under it: P (approval) or W (refund)."""
    root = f"{trace}-root"
    out = [{"t": t0, "trace_id": trace, "kind": "invoke_agent", "phase": "start", "action_id": root}]
    for i, s in enumerate(steps, start=1):
        event = {"t": t0 + i, "trace_id": trace, "parent_action_id": root, "action_id": f"{trace}-{i}"}
        event.update({"kind": "approval"} if s == "P" else {"kind": "execute_tool", "phase": "start", "name": "refund"})
        out.append(event)
    return out


@pytest.mark.parametrize(("steps", "unapproved"), [
    ("PW", []), ("PWW", [3]), ("PPWW", []), ("PWPW", []), ("WPW", [1]), ("PWWPW", [3]), ("PPWWW", [5]), ("W", [1]),
])
def test_once_each_approval_covers_one_action_in_order(tmp_path, steps, unapproved) -> None:
    records = build_events(anc_events("t1", steps), "once")
    incidents = replay(RuleEvaluator(rules_from(tmp_path, ANCESTOR)), records)
    fired = sorted(records.index(next(r for r in records if r["event_id"] == e)) for i in incidents
                   for e in i.event_ids)
    assert fired == unapproved


def test_once_says_why_when_every_approval_is_used(tmp_path) -> None:
    (incident,) = replay(RuleEvaluator(rules_from(tmp_path, ANCESTOR)), build_events(anc_events("t1", "PWW"), "why"))
    assert "already used by an earlier action" in incident.summary


def test_without_once_one_approval_covers_every_action(tmp_path) -> None:
    body = ANCESTOR.replace("      once: true\n", "")
    assert replay(RuleEvaluator(rules_from(tmp_path, body)), build_events(anc_events("t1", "PWWW"), "many")) == []


def test_once_with_bind_uses_up_only_the_matching_approval(tmp_path) -> None:
    body = ANCESTOR.replace("once: true", "once: true\n      bind: args_hash")
    raw = anc_events("t1", "PPWW")
    raw[1]["attributes"] = {"args_hash": "a"}
    raw[2]["attributes"] = {"args_hash": "b"}
    raw[3]["attributes"] = {"args_hash": "a"}
    raw[4]["attributes"] = {"args_hash": "a"}  # its approval of "a" was used by the first refund; "b" differs
    (incident,) = replay(RuleEvaluator(rules_from(tmp_path, body)), build_events(raw, "bind"))
    assert "already used" in incident.summary and incident.count == 1


def _random_ancestor_log(seed: int) -> list[dict]:
    rng = random.Random(seed)
    raw = [e for n in range(5) for e in anc_events(f"t{n}", "".join(rng.choice("PWW") for _ in range(7)), 15 * n)]
    records = build_events(raw, f"anc{seed}")
    return sorted(records, key=lambda r: r["event_time_us"] + rng.randint(0, 3_000_000))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_once_gives_the_same_incidents_at_every_batch_size(tmp_path, seed) -> None:
    rules = rules_from(tmp_path, ANCESTOR)
    records = _random_ancestor_log(seed)
    assert every_batching(rules, records)


def test_once_survives_a_snapshot_at_any_point(tmp_path) -> None:
    every_restore(rules_from(tmp_path, ANCESTOR), _random_ancestor_log(4))


# -- window: trace ---------------------------------------------------------------------------------

PER_TRACE = """
    condition: kind = execute_tool and phase = start
    aggregate: {{fn: {fn}, {field}op: ">", threshold: {threshold}}}
    by: [agent_id]
    window: trace
    output: "{{count}} tool calls in trace {{trace_id}}, value {{value}} over {{window}}"
"""


def tools_in(trace: str, n: int, t0: int, *, end: bool = True, latency: int = 0) -> list[dict]:
    root = f"{trace}-root"
    out = [{"t": t0, "trace_id": trace, "kind": "invoke_agent", "phase": "start", "action_id": root}]
    out += [{"t": t0 + 1 + i, "trace_id": trace, "kind": "execute_tool", "phase": "start", "name": "lookup",
             "parent_action_id": root, "latency_us": latency * (i + 1)} for i in range(n)]
    if end:
        out.append({"t": t0 + 1 + n, "trace_id": trace, "kind": "invoke_agent", "phase": "end", "action_id": root})
    return out


def test_window_trace_counts_each_trace_apart(tmp_path) -> None:
    rules = rules_from(tmp_path, PER_TRACE.format(fn="count", field="", threshold=3))
    # two traces of one agent inside one minute: 3 + 4 calls; only the second passes 3 (a 1h window would see 7)
    raw = tools_in("a", 3, 0) + tools_in("b", 4, 10)
    incidents = replay(RuleEvaluator(rules), build_events(raw, "count"))
    assert [(i.trace_id, i.count, i.key) for i in incidents] == [("b", 4, "agent-1\x1fb")]
    assert "4 tool calls in trace b" in incidents[0].summary and "over trace" in incidents[0].summary


def test_window_trace_closes_at_the_root_end_for_falling_fns(tmp_path) -> None:
    rules = rules_from(tmp_path, PER_TRACE.format(fn="avg", field="field: latency_us, ", threshold=15))
    evaluator = RuleEvaluator(rules, lateness_us=2_000_000)
    # avg of 10, 20, 30 = 20 > 15; decided when the watermark passes the root's end (t = 4 s)
    records = build_events(tools_in("a", 3, 0, latency=10), "avg")
    assert evaluator.evaluate(records) == []  # the watermark (4 s - 2 s) has not reached the end
    later = build_events([{"t": 6, "trace_id": "other", "kind": "chat"}], "tick")
    (incident,) = evaluator.evaluate(later)
    assert incident.trace_id == "a" and incident.count == 3 and "value 20.0" in incident.summary
    assert incident.window_end_us - incident.window_start_us == 2_000_000  # first to last call


def test_window_trace_without_a_root_end_closes_after_idle(tmp_path) -> None:
    body = PER_TRACE.format(fn="avg", field="field: latency_us, idle: 1m, ", threshold=15)
    rules = rules_from(tmp_path, body)
    evaluator = RuleEvaluator(rules, lateness_us=0)
    assert evaluator.evaluate(build_events(tools_in("a", 3, 0, end=False, latency=10), "idle")) == []
    assert evaluator.evaluate(build_events([{"t": 50, "trace_id": "x", "kind": "chat"}], "t50")) == []
    (incident,) = evaluator.evaluate(build_events([{"t": 64, "trace_id": "x", "kind": "chat"}], "t64"))
    assert incident.trace_id == "a"


def test_window_trace_is_deterministic_under_batching_and_restore(tmp_path) -> None:
    rules = rules_from(tmp_path, PER_TRACE.format(fn="count", field="", threshold=2))
    rng = random.Random(5)
    raw = [e for n in range(5) for e in tools_in(f"t{n}", rng.randint(1, 5), 5 * n)]
    records = build_events(raw, "det")
    assert every_batching(rules, records)
    every_restore(rules, records)


# -- what the compiler refuses -------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    (SEQUENCE.replace("within: 1h", "within: 1h\n    window: trace"), "window: trace counts an aggregate per trace"),
    (PER_TRACE.format(fn="rate", field="", threshold=1), "fn rate is per second"),
    (PER_TRACE.format(fn="count", field="slide: 1m, ", threshold=1), "has no slide"),
    (PER_TRACE.format(fn="count", field="idle: 1m, ", threshold=1).replace("window: trace", "window: 1h"),
     "idle applies to window: trace only"),
    (ANCESTOR.replace("once: true", "once: 2"), "once must be true or false"),
    (SEQUENCE.replace("unless: kind = approval", "unless: kind = nonsense"), "unless"),
])
def test_the_compiler_names_what_is_wrong(tmp_path, body, message) -> None:
    with pytest.raises(RuleError, match=message):
        rules_from(tmp_path, body)
