"""`agentaudit control kill/list/clear` and `agentaudit rules promote` against the real broker:
each is a recorded command naming its actor, and a listening agent obeys."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.control import ActionBlocked, ControlListener, read_control_state
from agentaudit.schemas import ControlType, RuleMode
from agentaudit.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.broker]


@pytest.fixture
def cli(kafka_settings_factory: Callable[..., KafkaSettings], monkeypatch: pytest.MonkeyPatch):
    kafka = kafka_settings_factory(partitions=2)
    monkeypatch.setenv("AGENTAUDIT_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("AGENTAUDIT_TOPIC_CONTROL", kafka.topics.control)
    monkeypatch.setenv("COLUMNS", "400")  # rich tables: one row per line
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return kafka, run


def test_kill_list_clear_are_recorded_with_the_actor_and_obeyed(cli) -> None:
    kafka, run = cli
    with ControlListener(kafka, agents=["bot-7"]) as listener:
        assert listener.wait_ready(15)
        out = run("control", "kill", "--agent", "bot-7", "--actor", "alice", "--reason", "spending spree")
        command_id = re.search(r"command (\S+) by alice", out).group(1)
        assert listener.wait_for(command_id, 10)
        with pytest.raises(ActionBlocked, match="killed"):
            listener.check("bot-7", "chat", "gpt-4o")
        assert command_id in run("control", "list")
        run("control", "clear", "--command", command_id, "--actor", "bob", "--note", "budget raised")
        state = read_control_state(kafka)
        assert command_id not in {c.command_id for c in state.active(time.time_ns() // 1000)}
        listener.wait_for(state.history[-1].command_id, 10)
        listener.check("bot-7", "chat", "gpt-4o")  # runs again
    clear = state.history[-1]
    assert clear.type is ControlType.CLEAR and clear.issuer.id == "bob" and clear.clears_command_id == command_id
    assert clear.attributes["note"] == "budget raised"
    assert "cleared by bob" in run("control", "list", "--all")


def test_promotion_is_a_recorded_command_and_changes_the_mode(cli) -> None:
    kafka, run = cli
    out = run("rules", "promote", "security.forbidden-tool", "--to", "simulate", "--actor", "carol",
              "--note", "trial")
    assert "detect -> simulate by carol" in out
    out = run("rules", "promote", "security.forbidden-tool", "--to", "enforce", "--actor", "carol")
    assert "simulate -> enforce by carol" in out
    state = read_control_state(kafka)
    assert state.rule_modes == {"security.forbidden-tool": RuleMode.ENFORCE}
    promotions = [c for c in state.history if c.type is ControlType.PROMOTE_RULE]
    assert [c.attributes["from_mode"] for c in promotions] == ["detect", "simulate"]
    assert {c.issuer.id for c in promotions} == {"carol"}


def test_unknown_rule_and_unknown_command_fail_with_a_hint(cli) -> None:
    _, _ = cli
    runner = CliRunner()
    result = runner.invoke(app, ["rules", "promote", "no.such-rule", "--to", "enforce", "--actor", "x"])
    assert result.exit_code == 1 and "no enabled rule" in result.output
    result = runner.invoke(app, ["control", "clear", "--command", "nope", "--actor", "x"])
    assert result.exit_code == 1 and "control list --all" in result.output
