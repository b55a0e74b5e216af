"""``sequence ... unless`` and ``ancestor ... once`` against brute-force statements of their meaning.

Hypothesis writes random traces (several per log, ties in event time included, so the event-id
tiebreak matters), delivers them out of order within the allowed lateness and in random batches;
the engine's incidents must equal what the plain definitions below say.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import build_events, replay

SECOND = 1_000_000
WITHIN_S = 8

SEQUENCE = f"""
rules:
  - id: seq
    desc: A then B with no C between
    condition: kind in (plan, guardrail)
    sequence:
      then: kind = execute_tool
      unless: kind in (approval, guardrail)
      within: {WITHIN_S}s
    output: "x"
    severity: low
    tags: [sandbox]
"""

ANCESTOR = f"""
rules:
  - id: anc
    desc: each approval covers one action
    condition: kind = execute_tool and phase = start
    ancestor: {{approval: kind = approval, within: {WITHIN_S}s, once: true}}
    by: [trace_id]
    output: "x"
    severity: low
    tags: [sandbox]
"""

# A = plan, B = execute_tool, C = approval, D = guardrail (both an A and a C), x = chat
SEQ_KIND = {"A": "plan", "B": "execute_tool", "C": "approval", "D": "guardrail", "x": "chat"}

logs = st.lists(  # traces of (letter, whole-second time offset) steps
    st.lists(st.tuples(st.sampled_from("ABCDx"), st.integers(0, 12)), min_size=1, max_size=10),
    min_size=1, max_size=4)


def deliver(records: list[dict], seed: int) -> list[dict]:
    rng = random.Random(seed)
    return sorted(records, key=lambda r: r["event_time_us"] + rng.randint(0, 5 * SECOND))  # within 30 s lateness


def fired_bs(incidents) -> set[str]:
    return {i.event_ids[-1] for i in incidents} if incidents else set()


def sequence_reference(records: list[dict]) -> set[str]:
    """Event ids of the Bs with some A before them within T and no C strictly between that A and them."""
    out = set()
    order = lambda r: (r["event_time_us"], r["event_id"])  # noqa: E731 - a sort key, named for the asserts below
    for b in records:
        if b["kind"] != "execute_tool":
            continue
        same = [r for r in records if r["trace_id"] == b["trace_id"]]
        for a in same:
            if a["kind"] not in ("plan", "guardrail") or not order(a) < order(b):
                continue
            if b["event_time_us"] - a["event_time_us"] > WITHIN_S * SECOND:
                continue
            if not any(c["kind"] in ("approval", "guardrail") and order(a) < order(c) < order(b) for c in same):
                out.add(b["event_id"])
    return out


def incident_bs(incidents, records) -> set[str]:
    """The B event ids the sequence incidents name (each incident of a trace and window names its Bs)."""
    ids = {e for i in incidents for e in i.event_ids}
    return {r["event_id"] for r in records if r["kind"] == "execute_tool" and r["event_id"] in ids}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs, st.integers(0, 10**6), st.integers(1, 20))
def test_sequence_unless_matches_its_definition(tmp_path_factory, traces, seed, batch_size) -> None:
    path = tmp_path_factory.mktemp("seq") / "r.yaml"
    path.write_text(SEQUENCE)
    raw = [{"t": t, "trace_id": f"t{n}", "kind": SEQ_KIND[letter], "phase": "point"}
           for n, steps in enumerate(traces) for letter, t in steps]
    records = build_events(sorted(raw, key=lambda e: e["t"]), f"seq{seed}")
    incidents = replay(RuleEvaluator(load_rule_set([str(path)])), deliver(records, seed), batch_size=batch_size)
    assert incident_bs(incidents, records) == sequence_reference(records)


def ancestor_reference(records: list[dict]) -> set[str]:
    """Actions, in (time, id) order, each taking the earliest unused sibling approval at or before it within T."""
    out = set()
    used: set[str] = set()
    order = lambda r: (r["event_time_us"], r["event_id"])  # noqa: E731 - a sort key, named for the asserts below
    for action in sorted((r for r in records if r["kind"] == "execute_tool"), key=order):
        free = [p for p in records if p["kind"] == "approval" and p["trace_id"] == action["trace_id"]
                and p["event_id"] not in used and p["event_time_us"] <= action["event_time_us"]
                and action["event_time_us"] - p["event_time_us"] <= WITHIN_S * SECOND]
        if free:
            used.add(min(free, key=order)["event_id"])
        else:
            out.add(action["event_id"])
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.tuples(st.sampled_from("PWWx"), st.integers(0, 12)), min_size=1, max_size=10),
                min_size=1, max_size=4), st.integers(0, 10**6), st.integers(1, 20))
def test_ancestor_once_matches_its_definition(tmp_path_factory, traces, seed, batch_size) -> None:
    path = tmp_path_factory.mktemp("anc") / "r.yaml"
    path.write_text(ANCESTOR)
    kinds = {"P": {"kind": "approval"}, "W": {"kind": "execute_tool", "phase": "start"}, "x": {"kind": "chat"}}
    raw = []
    for n, steps in enumerate(traces):
        raw.append({"t": 0, "trace_id": f"t{n}", "kind": "invoke_agent", "phase": "start", "action_id": f"root{n}"})
        raw += [{"t": t, "trace_id": f"t{n}", "parent_action_id": f"root{n}", **kinds[letter]} for letter, t in steps]
    records = build_events(sorted(raw, key=lambda e: e["t"]), f"anc{seed}")
    incidents = replay(RuleEvaluator(load_rule_set([str(path)])), deliver(records, seed), batch_size=batch_size)
    named = {e for i in incidents for e in i.event_ids}
    assert named == ancestor_reference(records)
