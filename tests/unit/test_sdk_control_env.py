"""AGENTAUDIT_CONTROL and AGENTAUDIT_GUARD_RULES turn on the SDK's control plane; explicit arguments win."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentaudit.producers import ActionBlocked, AuditClient, SdkSettings

RULES = """\
required_engine_version: 1
rules:
  - id: env.no-shell
    desc: No shells.
    condition: kind = execute_tool and phase = start and name = "shell.exec"
    output: "{agent_id} ran {name}"
    severity: high
    mode: enforce
    tags: [stable, security]
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "guard.yaml"
    path.write_text(RULES)
    return path


def client(tmp_path: Path, **kwargs) -> AuditClient:
    # nothing listens on port 9: no event is sent, and the control listener starts only on a first check
    return AuditClient("127.0.0.1:9", spool_dir=tmp_path / "spool", ensure_topic=False, **kwargs)


def test_settings_read_the_environment(monkeypatch, rules: Path) -> None:
    assert (SdkSettings().control, SdkSettings().guard_rule_paths()) == (False, None)
    monkeypatch.setenv("AGENTAUDIT_CONTROL", "true")
    monkeypatch.setenv("AGENTAUDIT_GUARD_RULES", f"{rules}, {rules.parent / 'more'} ,")
    settings = SdkSettings()
    assert settings.control is True
    assert settings.guard_rule_paths() == [str(rules), str(rules.parent / "more")]


def test_the_environment_turns_on_control_and_the_guard(monkeypatch, tmp_path: Path, rules: Path) -> None:
    monkeypatch.setenv("AGENTAUDIT_CONTROL", "true")
    monkeypatch.setenv("AGENTAUDIT_GUARD_RULES", str(rules))
    audit = client(tmp_path)
    try:
        gate = audit._gate.gate
        assert gate.listener is not None
        assert [r.id for r in gate.guard.rules] == ["env.no-shell"]
    finally:
        audit.close(timeout=1)


def test_the_guard_from_the_environment_denies_before_the_tool_runs(monkeypatch, tmp_path: Path,
                                                                    rules: Path) -> None:
    monkeypatch.setenv("AGENTAUDIT_GUARD_RULES", str(rules))
    audit = client(tmp_path)
    ran = []
    try:
        assert audit._gate.gate.listener is None  # AGENTAUDIT_CONTROL is unset: no control topic
        with pytest.raises(ActionBlocked) as blocked, audit.action("execute_tool", name="shell.exec"):
            ran.append("shell")
        assert ran == [] and blocked.value.rule_id == "env.no-shell"
        with audit.action("execute_tool", name="search"):
            ran.append("search")
        assert ran == ["search"]
    finally:
        audit.close(timeout=1)


def test_explicit_arguments_win_over_the_environment(monkeypatch, tmp_path: Path, rules: Path) -> None:
    monkeypatch.setenv("AGENTAUDIT_CONTROL", "true")
    monkeypatch.setenv("AGENTAUDIT_GUARD_RULES", str(rules))
    empty = rules.parent / "empty.yaml"
    empty.write_text("required_engine_version: 1\n")
    audit = client(tmp_path, control=False, guard_rules=str(empty))
    try:
        gate = audit._gate.gate
        assert gate.listener is None and not gate.guard.rules
    finally:
        audit.close(timeout=1)
    monkeypatch.delenv("AGENTAUDIT_GUARD_RULES")
    monkeypatch.setenv("AGENTAUDIT_CONTROL", "false")
    plain = client(tmp_path)
    try:
        assert plain._gate is None  # neither: one `is None` test per action
    finally:
        plain.close(timeout=1)
