"""``agentaudit up --rules DIR`` hands the same rule files to the dashboard as to the consumer (issue 13):
without it the dashboard described the shipped pack and flagged every incident's revision as different."""

from __future__ import annotations

from pathlib import Path

from agentaudit.infra.stack import Stack, StackSettings


def _processes(tmp_path: Path, **settings) -> dict[str, object]:
    (tmp_path / "home").mkdir()
    stack = Stack(StackSettings(home=tmp_path / "home", simulate_rate=0, **settings))
    return {c.name.split(" ")[0]: c for c in stack._components()}


def _env(component) -> dict[str, str]:
    process = component.stop.__self__  # the ManagedProcess the component wraps
    return process._env


def test_up_rules_reach_the_dashboard_and_the_consumer(tmp_path, monkeypatch):
    rules = tmp_path / "my-rules"
    rules.mkdir()
    monkeypatch.chdir(tmp_path)  # a relative --rules is resolved before the children run in home
    components = _processes(tmp_path, rules="my-rules")
    consumer, dashboard = components["consumer"], components["dashboard"]
    argv = consumer.stop.__self__.argv
    assert argv[argv.index("--rules") + 1] == str(rules.resolve())
    assert _env(dashboard)["AGENTAUDIT_DASHBOARD_RULES"] == str(rules.resolve())


def test_without_rules_the_dashboard_reads_the_shipped_pack(tmp_path):
    dashboard = _processes(tmp_path)["dashboard"]
    assert "AGENTAUDIT_DASHBOARD_RULES" not in _env(dashboard)
