"""The inline guard: single-event rules only, decisions by mode, deny before the tool runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentaudit.control import ActionBlocked
from agentaudit.control.guard import Guard
from agentaudit.rules import load_rule_set
from agentaudit.schemas import RuleMode
from tests.control_support import action_record, write_rules


@pytest.fixture
def guard(tmp_path: Path) -> Guard:
    return Guard(load_rule_set(str(write_rules(tmp_path))))


def test_only_single_event_rules_are_guarded(guard: Guard) -> None:
    assert {r.id for r in guard.rules} == {"guard.forbidden-tool", "guard.egress-simulated", "guard.deep-chain"}
    assert guard.skipped == (("guard.tool-burst", "aggregate"),)


def test_enforce_rule_denies_and_names_the_rule(guard: Guard) -> None:
    record = action_record(name="shell.exec")
    decisions = guard.evaluate(record)
    assert [(d.rule_id, d.decision) for d in decisions] == [("guard.forbidden-tool", "deny")]
    with pytest.raises(ActionBlocked) as info:
        guard.enforce(decisions, record)
    assert info.value.code == "guard_denied" and info.value.rule_id == "guard.forbidden-tool"
    assert "bot-1 called forbidden tool shell.exec" in str(info.value)


def test_simulate_and_detect_rules_record_but_never_deny(guard: Guard) -> None:
    record = action_record(name="http.post", depth=9)
    decisions = guard.evaluate(record)
    assert sorted((d.rule_id, d.decision) for d in decisions) == [
        ("guard.deep-chain", "log"), ("guard.egress-simulated", "would_deny")]
    guard.enforce(decisions, record)  # does not raise
    attrs = decisions[0].attributes(record)
    assert attrs["guarded_action_id"] == record["action_id"] and attrs["guarded_name"] == "http.post"


def test_harmless_action_has_no_decision(guard: Guard) -> None:
    assert guard.evaluate(action_record(name="search")) == []
    assert guard.evaluate(action_record(kind="chat", name="gpt", model="gpt-4o")) == []


def test_promotion_overrides_the_file_mode(tmp_path: Path) -> None:
    modes = {"guard.egress-simulated": RuleMode.ENFORCE, "guard.forbidden-tool": RuleMode.SIMULATE}
    guard = Guard(load_rule_set(str(write_rules(tmp_path))), modes=modes.get)
    record = action_record(name="http.post")
    with pytest.raises(ActionBlocked):
        guard.enforce(guard.evaluate(record), record)
    shell = action_record(name="shell.exec")
    assert [d.decision for d in guard.evaluate(shell)] == ["would_deny"]


def test_the_default_pack_loads_into_the_guard() -> None:
    guard = Guard.from_paths(None)
    assert guard.rules and all(r.kind == "predicate" for r in guard.rules)
