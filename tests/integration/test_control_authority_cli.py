"""The signed control plane as an operator uses it: `agentaudit up`'s authority files, the CLI signing with
the operator key, and listeners that obey only what the authority admits."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.control import ActionBlocked, ControlListener
from agentaudit.control.authority import Authority, sign_headers
from agentaudit.control.provision import provision_authority
from agentaudit.infra.kafka import KafkaProducer
from agentaudit.schemas import AvroCodec, ControlCommand, ControlType, SigningKey
from agentaudit.settings import KafkaSettings
from tests.authority_support import wait_until
from tests.control_support import write_rules

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def test_provisioned_authority_files_are_private_kept_and_grant_what_each_does(tmp_path: Path) -> None:
    made = provision_authority(tmp_path, operator="alice")
    assert made.created
    for path in (made.authority_file, made.operator_key_file, made.service_key_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    authority = Authority.load(made.authority_file)
    assert authority.may("human:alice", "promote", "acme") and authority.may("human:bob", "resolve", "globex")
    assert not authority.may("human:bob", "promote", "acme")
    assert authority.may("system:agentaudit-rules", "pause", "acme")
    assert not authority.may("system:agentaudit-rules", "clear", "acme")
    assert authority.may("system:agentaudit-escalator", "escalate", "acme")
    before = made.authority_file.read_text()
    again = provision_authority(tmp_path, operator="alice")  # a restart keeps keys and (edited) grants
    assert not again.created and made.authority_file.read_text() == before
    assert SigningKey.load(made.operator_key_file).public_key in before


@pytest.fixture
def signed_cli(kafka_settings_factory: Callable[..., KafkaSettings], monkeypatch: pytest.MonkeyPatch,
               tmp_path: Path):
    kafka = kafka_settings_factory(partitions=2)
    made = provision_authority(tmp_path, operator="alice")
    monkeypatch.setenv("AGENTAUDIT_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("AGENTAUDIT_TOPIC_CONTROL", kafka.topics.control)
    monkeypatch.setenv("AGENTAUDIT_AUTHORITY_FILE", str(made.authority_file))
    monkeypatch.setenv("AGENTAUDIT_OPERATOR_KEY_FILE", str(made.operator_key_file))
    monkeypatch.setenv("COLUMNS", "400")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        # a success: what the command printed (its log lines, a refusal naming the forged id, go to stderr)
        return result.stdout if code == 0 else result.output

    return kafka, made, run, monkeypatch


def test_the_cli_signs_with_the_operator_key_and_listeners_obey_only_that(signed_cli) -> None:
    kafka, made, run, monkeypatch = signed_cli
    authority = Authority.load(made.authority_file)
    with ControlListener(kafka, agents=["bot-7"], authority=authority) as listener:
        assert listener.wait_ready(15)
        out = run("control", "kill", "--agent", "bot-7", "--actor", "alice", "--reason", "spending spree")
        command_id = re.search(r"command (\S+) by alice", out).group(1)
        assert listener.wait_for(command_id, 10)
        with pytest.raises(ActionBlocked, match="killed by human alice"):
            listener.check("bot-7", "chat", "gpt-4o")

        # A forged clear with a plain producer: not listed, not obeyed.
        forged = ControlCommand(command_id="forged-clear", type=ControlType.CLEAR, agent_id="bot-7",
                                clears_command_id=command_id, issued_at_us=2**62,
                                issuer={"type": "human", "id": "alice"})
        value = AvroCodec("control").encode(forged.to_avro())
        with KafkaProducer(kafka) as producer:
            producer.produce(kafka.topics.control, value, key=b"bot-7",
                             headers=sign_headers(SigningKey.generate("alice-laptop"), "control", kafka.topics.control,
                                                  value))
            producer.flush(10)
        assert wait_until(lambda: listener.refusals)
        assert "forged-clear" not in run("control", "list", "--all")
        with pytest.raises(ActionBlocked):
            listener.check("bot-7", "chat", "gpt-4o")

        # Someone else's name with alice's key, or no key at all: refused before anything is published.
        assert "belongs to human:alice, not human:mallory" in run(
            "control", "clear", "--command", command_id, "--actor", "mallory", code=1)
        monkeypatch.delenv("AGENTAUDIT_OPERATOR_KEY_FILE")
        assert "commands must be signed" in run("control", "kill", "--agent", "bot-8", "--actor", "alice",
                                                "--reason", "x", code=1)
        monkeypatch.setenv("AGENTAUDIT_OPERATOR_KEY_FILE", str(made.operator_key_file))

        out = run("control", "clear", "--command", command_id, "--actor", "alice", "--note", "budget raised")
        clear_id = re.search(r"\(clear (\S+)\)", out).group(1)
        assert listener.wait_for(clear_id, 10)
        listener.check("bot-7", "chat", "gpt-4o")

    rules = write_rules(made.authority_file.parent)  # a rule file of its own: the test does not lean on the pack
    with ControlListener(kafka, agents=(), authority=authority) as promotions:
        out = run("rules", "promote", "guard.forbidden-tool", "--to", "simulate", "--actor", "alice",
                  "--rules", str(rules))
        command_id = re.search(r"command (\S+)\)", out).group(1)
        assert promotions.wait_for(command_id, 10)
        assert promotions.rule_mode("guard.forbidden-tool").value == "simulate"
    assert json.loads(made.authority_file.read_text())["grants"][0]["principal"] == "human:alice"
