"""``agentaudit up`` starts ``agentaudit notify`` with the consumer's owners file, an outbox under home and
the dashboard's URL as the deep links' base."""

from __future__ import annotations

from pathlib import Path

from agentaudit.infra.stack import DEFAULT_OWNERS, Stack, StackSettings


def _notifier_argv(tmp_path: Path, **settings) -> list[str]:
    (tmp_path / "home").mkdir()
    stack = Stack(StackSettings(home=tmp_path / "home", simulate_rate=0, **settings))
    components = {c.name.split(" ")[0]: c for c in stack._components()}
    names = list(components)
    assert names.index("notifier") == names.index("consumer") + 1  # after the topics and the consumer exist
    return components["notifier"].stop.__self__.argv, stack


def test_up_runs_the_notifier_on_the_consumers_owners_file(tmp_path: Path) -> None:
    owners = tmp_path / "owners.yaml"
    owners.write_text("teams: {}\n")
    argv, stack = _notifier_argv(tmp_path, owners=owners)
    assert argv[argv.index("-m") + 1:argv.index("-m") + 3] == ["agentaudit.cli", "notify"]
    assert argv[argv.index("--owners") + 1] == str(owners.resolve())
    assert argv[argv.index("--state-dir") + 1] == str(stack.home / "notify")
    assert argv[argv.index("--dashboard-url") + 1] == stack.urls["dashboard"]


def test_up_without_owners_uses_the_fleet_owners_file(tmp_path: Path) -> None:
    argv, _ = _notifier_argv(tmp_path)
    assert argv[argv.index("--owners") + 1] == str(DEFAULT_OWNERS)
