"""The control publisher on the real broker, driven batch by batch (no sink): which command an
incident becomes, promotions over the file's mode, and idempotent re-publishing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentaudit.consumers.control_publisher import ControlPublisher, ControlPublisherSettings
from agentaudit.control import read_control_state
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.schemas import ControlType, RuleMode
from tests.control_support import action_record, write_rules

pytestmark = [pytest.mark.integration, pytest.mark.broker]

RULES = """\
required_engine_version: 1
rules:
  - id: pub.shell
    desc: Shells are blocked for the agent that tried, not the whole agent.
    condition: kind = execute_tool and phase = start and name = "shell.exec"
    output: "{agent_id} ran {name}"
    severity: high
    mode: enforce
    tags: [stable, "control:block_tool"]
  - id: pub.refund
    desc: Refunds need a human.
    condition: kind = execute_tool and phase = start and name = "payments.refund"
    output: "{agent_id} refunded"
    severity: high
    mode: detect
    tags: [stable, "control:require_approval"]
"""


def publisher(kafka, tmp_path: Path, modes=None) -> ControlPublisher:
    evaluator = RuleEvaluator(load_rule_set(str(write_rules(tmp_path, RULES))))
    return ControlPublisher(evaluator, kafka, ControlPublisherSettings(ttl_s=120), modes=modes)


def test_tagged_rule_blocks_the_tool_and_republishing_is_idempotent(kafka_settings_factory, tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    pub = publisher(kafka, tmp_path)
    first = action_record(agent_id="bot-1", name="shell.exec")
    incidents = pub.evaluate([first, action_record(agent_id="bot-1", name="payments.refund")])
    pub.evaluate([action_record(agent_id="bot-1", name="shell.exec", event_id="again")])  # same window: same incident
    pub.close()
    by_rule = {i.rule_id: i for i in incidents}
    assert by_rule["pub.shell"].attributes["control_action"] == "block_tool"
    assert by_rule["pub.shell"].attributes["control_target"] == "bot-1/shell.exec"
    assert "control_action" not in by_rule["pub.refund"].attributes  # detect: nothing more
    state = read_control_state(kafka)
    [command] = state.history
    assert command.type is ControlType.BLOCK_TOOL and command.tool == "shell.exec"
    assert command.issuer.type.value == "system" and command.incident_id == by_rule["pub.shell"].incident_id
    now = time.time_ns() // 1000
    assert state.blocking("acme", "bot-1", "shell.exec", now) == command
    assert state.blocking("acme", "bot-1", "search", now) is None
    assert 119e6 < command.expires_at_us - command.issued_at_us <= 120e6


def test_promotion_overrides_the_file_mode_on_incidents_and_commands(kafka_settings_factory, tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    modes = {"pub.refund": RuleMode.ENFORCE, "pub.shell": RuleMode.SIMULATE}
    pub = publisher(kafka, tmp_path, modes=modes.get)
    incidents = pub.evaluate([action_record(agent_id="bot-2", name="payments.refund"),
                              action_record(agent_id="bot-2", name="shell.exec")])
    pub.close()
    assert {i.rule_id: i.mode for i in incidents} == {"pub.refund": RuleMode.ENFORCE, "pub.shell": RuleMode.SIMULATE}
    state = read_control_state(kafka)
    kinds = sorted((c.type.value, c.simulated) for c in state.history)
    assert kinds == [("block_tool", True), ("require_approval", False)]
    now = time.time_ns() // 1000
    assert state.blocking("acme", "bot-2", "shell.exec", now) is None  # simulated: never obeyed
    assert state.approval_required("acme", "bot-2", "payments.refund", now) is not None
