"""The ancestor rule's ``bind``: an approval covers an action only with the same bound attributes, unexpired."""

from __future__ import annotations

import pytest

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.exceptions import RuleError
from agentaudit.rules.harness import BASE_TIME_US, build_events, replay

RULE = """
rules:
  - id: bound-approval
    desc: a payment needs an approval of its exact arguments
    condition: kind = execute_tool and phase = start and name = "payments.refund"
    ancestor:
      approval: kind = approval
      within: 1h
      bind: {bind}
    output: "{{name}} unapproved: {{detail}}"
    severity: high
    tags: [sandbox]
"""


def rule_set(tmp_path, bind: str):
    path = tmp_path / "rule.yaml"
    path.write_text(RULE.format(bind=bind))
    return load_rule_set([str(path)])


def trace(n: int, approval: dict[str, str] | None, action: dict[str, str]) -> list[dict]:
    events = [{"t": 0, "kind": "invoke_agent", "phase": "start", "action_id": f"root-{n}", "trace_id": f"t{n}",
               "agent_id": f"agent-{n}"}]
    if approval is not None:
        events.append({"t": 1, "kind": "approval", "parent_action_id": f"root-{n}", "trace_id": f"t{n}",
                       "agent_id": f"agent-{n}", "attributes": approval})
    events.append({"t": 5, "kind": "execute_tool", "name": "payments.refund", "phase": "start",
                   "parent_action_id": f"root-{n}", "trace_id": f"t{n}", "agent_id": f"agent-{n}",
                   "attributes": action})
    return events


LATER = str(BASE_TIME_US + 600_000_000)
CASES = [
    ({"args_hash": "a", "approval_id": "x", "expires_at_us": LATER}, {"args_hash": "a", "approval_id": "x"}, None),
    ({"args_hash": "a", "approval_id": "x"}, {"args_hash": "a", "approval_id": "x"}, None),  # no expiry
    ({"args_hash": "a", "approval_id": "x"}, {"args_hash": "b", "approval_id": "x"}, "differs"),
    ({"args_hash": "a", "approval_id": "x", "expires_at_us": str(BASE_TIME_US + 2_000_000)},
     {"args_hash": "a", "approval_id": "x"}, "expired"),
    ({"args_hash": "a", "expires_at_us": "soon"}, {"args_hash": "a"}, "expired"),
    ({"args_hash": "", "approval_id": "x"}, {"args_hash": "", "approval_id": "x"}, "carries no"),
    ({"args_hash": "a"}, {}, "carries no"),
    (None, {"args_hash": "a"}, "no approval"),
]


def run(rules, cases) -> dict[str, str]:
    events = [e for n, (approval, action, _) in enumerate(cases) for e in trace(n, approval, action)]
    incidents = replay(RuleEvaluator(rules), build_events(events, "bind"), batch_size=3)
    return {i.key: i.summary for i in incidents}


def test_bind_args_hash_decides_each_case(tmp_path) -> None:
    got = run(rule_set(tmp_path, "args_hash"), CASES)
    for n, (_, _, why) in enumerate(CASES):
        if why is None:
            assert f"agent-{n}" not in got, (n, got)
        else:
            assert why in got[f"agent-{n}"], (n, got)


def test_bind_a_list_needs_every_attribute_equal(tmp_path) -> None:
    rules = rule_set(tmp_path, "[args_hash, approval_id]")
    cases = [({"args_hash": "a", "approval_id": "x"}, {"args_hash": "a", "approval_id": "x"}, None),
             ({"args_hash": "a", "approval_id": "x"}, {"args_hash": "a", "approval_id": "y"}, "differs")]
    got = run(rules, cases)
    assert set(got) == {"agent-1"} and "args_hash, approval_id differs" in got["agent-1"]


def test_without_bind_any_related_approval_counts(tmp_path) -> None:
    path = tmp_path / "rule.yaml"
    path.write_text(RULE.replace("      bind: {bind}\n", ""))
    got = run(load_rule_set([str(path)]), CASES)
    assert set(got) == {f"agent-{len(CASES) - 1}"}


def test_bound_state_survives_a_snapshot(tmp_path) -> None:
    rules = rule_set(tmp_path, "args_hash")
    records = build_events([e for n, (ap, ac, _) in enumerate(CASES) for e in trace(n, ap, ac)], "bind")
    cut = 8  # between case 2's approval (arguments a) and its action (arguments b)
    assert records[cut - 1]["kind"] == "approval" and records[cut]["kind"] == "execute_tool"
    first = RuleEvaluator(rules)
    before = first.evaluate(records[:cut])
    second = RuleEvaluator(rules)
    second.restore(first.snapshot())
    got = {i.key: i.summary for i in [*before, *second.evaluate(records[cut:]), *second.flush()]}
    assert got == run(rules, CASES)
    assert "differs" in got["agent-2"]


@pytest.mark.parametrize("bind", ["[]", "3", "['']", "{a: b}"])
def test_a_bad_bind_is_a_load_error_with_its_line(tmp_path, bind: str) -> None:
    with pytest.raises(RuleError, match="bind must be an attribute name") as info:
        rule_set(tmp_path, bind)
    assert ":9:" in str(info.value)
