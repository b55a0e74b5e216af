"""Ownership: most specific glob wins, file/line errors, escalation of unacknowledged incidents."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import build_events
from agentaudit.rules.owners import OwnersError, due_escalations, load_owners, unowned_agents
from agentaudit.schemas import Actor, Incident, IncidentLifecycleEvent, LifecycleType, Severity

OWNERS = """\
teams:
  payments:
    oncall: [alice]
    escalation: [alice, lead, vp]
  platform:
    oncall: [ops]
    escalation: [ops]
  finops: {}
owners:
  - {agent: "billing-*", team: payments}
  - {agent: "billing-reports", team: finops}
  - {tool: "payments.*", team: payments}
  - {tenant: "*", team: platform}
  - {rule: "cost.*", team: finops}
  - {agent: "b*", team: platform}
deadlines:
  critical: 10m
  low: never
"""
MIN = 60_000_000


@pytest.fixture
def owners(tmp_path: Path):
    path = tmp_path / "owners.yaml"
    path.write_text(OWNERS)
    return load_owners(path)


def test_most_specific_pattern_wins(owners) -> None:
    assert owners.resolve(agent="billing-reports").team == "finops"  # exact beats glob
    assert owners.resolve(agent="billing-x").team == "payments"  # longer glob beats b*
    assert owners.resolve(agent="bot").team == "platform"
    assert owners.resolve(agent="zeta") is None
    assert owners.resolve(agent="zeta", tenant="acme").team == "platform"
    assert owners.resolve(rule="cost.agent-daily-budget", agent="bot").team == "finops"  # 5 literals beat b*
    assert owners.resolve(rule="cost.agent-daily-budget", agent="billing-x").team == "payments"  # 8 beat 5
    found = owners.resolve(tool="payments.refund", tenant="acme")
    assert (found.team, found.subject, found.pattern, found.escalation) == ("payments", "tool", "payments.*",
                                                                            ("alice", "lead", "vp"))


def test_unowned_agents(tmp_path: Path) -> None:
    path = tmp_path / "o.yaml"
    path.write_text("owners:\n  - {agent: 'billing-*', team: payments}\n  - {tenant: globex, team: g}\n")
    owners = load_owners(path)
    seen = [("acme", "billing-1"), ("acme", "stray"), ("globex", "stray"), ("acme", "stray")]
    assert unowned_agents(seen, owners) == [("acme", "stray")]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("owners:\n  - {agent: a, tool: b, team: t}\n", 2, "exactly one of"),
        ("teams:\n  t: {}\nowners:\n  - {agent: a, team: nope}\n", 4, "unknown team 'nope'"),
        ("owners:\n  - {agent: a}\n", 2, "entry needs a team"),
        ("deadlines:\n  high: soon\n", 2, "bad deadline 'soon'"),
        ("deadlines:\n  urgent: 1h\n", 2, "unknown severity 'urgent'"),
        ("owners: [\n", 2, "YAML syntax error"),
        ("owner:\n  - {agent: a, team: t}\n", 1, "unknown key 'owner'"),
    ],
)
def test_bad_owners_file(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = tmp_path / "owners.yaml"
    path.write_text(text)
    with pytest.raises(OwnersError) as info:
        load_owners(path)
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def incident(severity: Severity, first_seen_us: int, agent: str = "billing-1") -> Incident:
    return Incident(incident_id=f"inc-{severity.value}", tenant="acme", rule_id="security.x", rule_revision="r",
                    severity=severity, agent_id=agent, first_seen_us=first_seen_us, last_seen_us=first_seen_us)


def test_escalation_one_level_per_deadline_along_the_chain(owners) -> None:
    crit = incident(Severity.CRITICAL, 0)
    events = due_escalations([crit], [], owners, now_us=25 * MIN)
    assert [(e.type, e.assignee, e.at_us) for e in events] == [
        (LifecycleType.ESCALATED, "alice", 10 * MIN), (LifecycleType.ESCALATED, "lead", 20 * MIN)]
    assert events == due_escalations([crit], [], owners, now_us=25 * MIN)  # deterministic ids
    # already escalated once: only the second level is due
    assert [e.assignee for e in due_escalations([crit], events[:1], owners, now_us=25 * MIN)] == ["lead"]
    ack = IncidentLifecycleEvent(event_id="a", incident_id=crit.incident_id, type=LifecycleType.ACKNOWLEDGED,
                                 actor=Actor(type="human", id="alice"), at_us=5 * MIN)
    assert due_escalations([crit], [ack], owners, now_us=60 * MIN) == []
    assert due_escalations([incident(Severity.LOW, 0)], [], owners, now_us=10**12) == []  # never
    high = incident(Severity.HIGH, 0, agent="nobody")  # default 1h deadline; the tenant glob owns it
    assert [(e.assignee, e.attributes["level"]) for e in due_escalations([high], [], owners, 61 * MIN)] == [("ops", "1")]


def test_evaluator_takes_the_owner_from_the_map_unless_the_rule_names_one(tmp_path: Path, owners) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(textwrap.dedent("""\
        rules:
          - {id: mapped, desc: d, severity: low, tags: [stable], output: o, condition: kind = execute_tool}
          - {id: fixed, desc: d, severity: low, tags: [stable], output: o, condition: kind = execute_tool, owner: sre}
        """))
    evaluator = RuleEvaluator(load_rule_set([str(rules)]), owners=owners)
    records = build_events([{"kind": "execute_tool", "name": "payments.refund", "phase": "start",
                             "agent_id": "zzz"}], "own")
    owners_by_rule = {i.rule_id: i.owner for i in evaluator.evaluate(records) + evaluator.flush()}
    assert owners_by_rule == {"mapped": "payments", "fixed": "sre"}
