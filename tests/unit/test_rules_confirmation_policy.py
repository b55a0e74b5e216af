"""Issue 13's done-when policy, in YAML alone: each write needs its own user confirmation, no refusal in between.

The policy is ``agentaudit/rules/pack/examples/confirm-each-write.yaml``. Conversations are built
with :func:`conversation`: each step is one event of a run, one second apart:
``start`` (the root invoke_agent), ``ask`` (a user question), ``lookup`` (a read-only tool call),
``propose`` (the agent's message listing the details), ``yes`` / ``no`` (a user turn with
``intent=confirm`` / ``intent=refuse``), ``write`` (execute_tool ``book_reservation``), ``end``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import build_events, replay

POLICY = Path(__file__).parents[2] / "agentaudit" / "rules" / "pack" / "examples" / "confirm-each-write.yaml"
RULE_ID = "conversation.write-without-confirmation"
SECOND = 1_000_000


def conversation(n: int, steps: list[str], *, t0: int = 0) -> list[dict]:
    """The raw fixture events of run ``n`` (trace ``conv-n``), ``steps`` one second apart from ``t0`` seconds."""
    trace = f"conv-{n}"
    root = f"{trace}-root"
    out = []
    for i, step in enumerate(steps):
        event = {"t": t0 + i, "trace_id": trace, "agent_id": "support-bot", "parent_action_id": root,
                 "action_id": f"{trace}-{i}"}
        if step in ("start", "end"):
            event.update(kind="invoke_agent", phase=step, action_id=root, parent_action_id=None, name="support")
        elif step in ("ask", "yes", "no"):
            intent = {"ask": "question", "yes": "confirm", "no": "refuse"}[step]
            event.update(kind="message", actor_type="human", actor_id="user-1",
                         attributes={"role": "user", "intent": intent})
        elif step == "propose":
            event.update(kind="message", attributes={"role": "assistant", "intent": "propose"})
        elif step == "lookup":
            event.update(kind="execute_tool", phase="start", name="search_flights")
        elif step == "write":
            event.update(kind="execute_tool", phase="start", name="book_reservation")
        else:
            raise ValueError(step)
        out.append(event)
    return out


CASES = {  # run -> (steps, how many of its writes break the policy)
    "clean": (["start", "ask", "lookup", "propose", "yes", "write", "ask", "propose", "yes", "write", "end"], 0),
    "two-writes-one-yes": (["start", "ask", "propose", "yes", "write", "write", "end"], 1),
    "yes-then-no": (["start", "ask", "propose", "yes", "no", "write", "end"], 1),
    "no-proposal": (["start", "ask", "lookup", "write", "end"], 1),
    "no-then-yes": (["start", "propose", "no", "propose", "yes", "write", "end"], 0),
    "yes-before-each-of-three": (["start", "yes", "write", "yes", "write", "yes", "write", "end"], 0),
    "three-writes-one-yes": (["start", "propose", "yes", "write", "write", "write", "end"], 2),
}


@pytest.fixture(scope="module")
def rules():
    return load_rule_set([str(POLICY)])


def judge(rules, runs: dict[str, list[str]], batch_size: int | None = None) -> dict[str, int]:
    names = list(runs)
    raw = [e for n, name in enumerate(names) for e in conversation(n, runs[name], t0=100 * n)]
    incidents = replay(RuleEvaluator(rules), build_events(raw, "conv"), batch_size=batch_size)
    assert all(i.rule_id == RULE_ID for i in incidents)
    return {names[int(i.trace_id.split("-")[1])]: i.count for i in incidents}


def test_each_case_is_judged_as_the_policy_says(rules) -> None:
    got = judge(rules, {name: steps for name, (steps, _) in CASES.items()})
    expected = {name: breaches for name, (_, breaches) in CASES.items() if breaches}
    assert got == expected


@pytest.mark.parametrize("name", list(CASES))
def test_each_case_alone(rules, name) -> None:
    steps, breaches = CASES[name]
    assert judge(rules, {name: steps}) == ({name: breaches} if breaches else {})


def test_the_incident_names_the_violating_write_and_what_opened_the_gap(rules) -> None:
    raw = conversation(0, ["start", "propose", "yes", "no", "write", "end"])
    records = build_events(raw, "gap")
    (incident,) = replay(RuleEvaluator(rules), records)
    by_id = {r["event_id"]: r for r in records}
    named = [by_id[e] for e in incident.event_ids]
    assert [(r["kind"], r["attributes"].get("intent", r["name"])) for r in named] == [
        ("message", "refuse"), ("execute_tool", "book_reservation")]
    assert "book_reservation in trace conv-0 without the user's confirmation" in incident.summary


def test_a_late_confirmation_still_counts_when_it_arrives_within_the_lateness(rules) -> None:
    # the confirmation happened before the write but reaches the evaluator after it (another stream)
    raw = conversation(0, ["start", "propose", "yes", "write", "end"])
    records = build_events(raw, "late")
    confirm, write = records[2], records[3]
    reordered = [records[0], records[1], write, confirm, records[4]]
    assert replay(RuleEvaluator(rules), reordered, batch_size=1) == []
    assert confirm["attributes"]["intent"] == "confirm" and write["name"] == "book_reservation"


def test_a_corpus_of_random_conversations_matches_an_independent_count(rules) -> None:
    rng = random.Random(13)
    runs: dict[str, list[str]] = {}
    expected: dict[str, int] = {}
    for n in range(300):
        steps = ["start"]
        confirmed = False
        breaches = 0
        for _ in range(rng.randint(1, 12)):
            step = rng.choice(["ask", "lookup", "propose", "yes", "no", "write", "write"])
            steps.append(step)
            if step == "yes":
                confirmed = True
            elif step == "no":
                confirmed = False
            elif step == "write":
                breaches += not confirmed
                confirmed = False
        steps.append("end")
        runs[f"run-{n}"] = steps
        if breaches:
            expected[f"run-{n}"] = breaches
    assert 50 < len(expected) < 250  # both outcomes are well represented
    assert judge(rules, runs, batch_size=37) == expected


CONFIRMATION_BREACHES = ("unconfirmed_write", "write_after_refusal", "double_write")


@pytest.mark.parametrize("batch_size", [1, 97, None])
def test_on_simulated_conversations_incidents_are_the_injected_confirmation_breaches(rules, batch_size) -> None:
    from agentaudit.producers.simulator.conversation import conversation_runs

    corpus = conversation_runs(200, breach_rate=0.2)
    injected = {(b.trace_id, b.event_id) for b in corpus.breaches if b.kind in CONFIRMATION_BREACHES}
    assert len(injected) >= 10  # the corpus holds breaches of this policy (and others it must not see)
    assert any(b.kind not in CONFIRMATION_BREACHES for b in corpus.breaches)
    incidents = replay(RuleEvaluator(rules), corpus.records, batch_size=batch_size)
    # one incident per breached run, one write each, and that write is the injected breach's event
    assert all(i.count == 1 for i in incidents)
    assert {(i.trace_id, i.event_ids[-1]) for i in incidents} == injected


ONCE = """
rules:
  - id: write-needs-its-own-approval
    desc: each write needs an approval of its own arguments, used once
    condition: kind = execute_tool and phase = start and name in ("book_reservation", "update_reservation")
    ancestor: {approval: kind = approval and actor_type = human, within: 1h, bind: args_hash, once: true}
    by: [trace_id]
    output: "{name}: {detail}"
    severity: high
    tags: [sandbox]
"""


def test_ancestor_once_finds_the_same_breaches_where_the_agent_records_approvals(tmp_path) -> None:
    # the simulator records each "yes" as the SDK's approval too; once: true makes the second write of a
    # "double_write" run unapproved without any counter on the events
    from agentaudit.producers.simulator.conversation import conversation_runs

    path = tmp_path / "once.yaml"
    path.write_text(ONCE)
    corpus = conversation_runs(200, breach_rate=0.2, seed=1)
    injected = {(b.trace_id, b.event_id) for b in corpus.breaches if b.kind in CONFIRMATION_BREACHES}
    incidents = replay(RuleEvaluator(load_rule_set([str(path)])), corpus.records, batch_size=64)
    assert {(i.trace_id, i.event_ids[-1]) for i in incidents} == injected
    double = {b.trace_id for b in corpus.breaches if b.kind == "double_write"}
    assert double and all("already used" in i.summary for i in incidents if i.trace_id in double)
