"""The inline guard and approvals on the real broker: denied before the tool runs, and recorded;
an approval for arguments A does not authorise arguments B."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentaudit.control import ActionBlocked, ControlIssuer, ControlListener
from agentaudit.control.approvals import Approval, args_hash
from agentaudit.control.guard import Guard
from agentaudit.infra.kafka import read_all
from agentaudit.producers.gate import ActionGate
from agentaudit.rules import load_rule_set
from agentaudit.schemas import AvroCodec, ControlType
from tests.control_support import GatedAgent, write_rules

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def actions(kafka, expected: int) -> list[dict]:
    codec = AvroCodec("action")
    return [codec.decode(m.value()) for m in read_all(kafka, kafka.topics.actions, expected=expected, timeout=15)]


def test_guard_denies_a_forbidden_tool_before_it_runs_and_records_it(kafka_settings_factory, tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    agent = GatedAgent(kafka, "bot-1", ActionGate(guard=Guard(load_rule_set(str(write_rules(tmp_path))))))
    agent.call("search")
    with pytest.raises(ActionBlocked) as info:
        agent.call("shell.exec", args={"cmd": "rm -rf /"})
    agent.call("http.post", args={"url": "https://example.com"})  # simulate-mode rule: runs, recorded
    agent.close()
    assert info.value.code == "guard_denied" and info.value.rule_id == "guard.forbidden-tool"
    assert [tool for tool, _ in agent.ran] == ["search", "http.post"]  # shell.exec never ran

    events = actions(kafka, expected=4)
    started = [(e["kind"], e["name"]) for e in events if e["kind"] == "execute_tool"]
    assert started == [("execute_tool", "search"), ("execute_tool", "http.post")]
    notes = {e["name"]: e for e in events if e["kind"] == "guardrail"}
    deny = notes["guard:guard.forbidden-tool"]
    assert deny["phase"] == "point" and deny["status"] == "denied"
    assert deny["attributes"]["decision"] == "deny" and deny["attributes"]["guarded_name"] == "shell.exec"
    assert deny["attributes"]["mode"] == "enforce"
    would = notes["guard:guard.egress-simulated"]
    assert would["status"] == "ok" and would["attributes"]["decision"] == "would_deny"
    assert would["parent_action_id"] == next(e["action_id"] for e in events if e["name"] == "http.post")


def test_an_approval_for_args_a_does_not_authorise_args_b(kafka_settings_factory) -> None:
    kafka = kafka_settings_factory(partitions=1)
    args_a = {"order": "o-17", "amount": 40, "currency": "EUR"}
    args_b = {"order": "o-17", "amount": 4000, "currency": "EUR"}
    with ControlIssuer(kafka) as issuer:
        need = issuer.publish(issuer.command(ControlType.REQUIRE_APPROVAL, agent_id="bot-pay", tool="payments.refund",
                                             actor="risk-team", reason="refunds need a human", tenant="acme"))
    with ControlListener(kafka, agents=["bot-pay"], tenant="acme") as listener:
        assert listener.wait_for(need.command_id, 15)
        agent = GatedAgent(kafka, "bot-pay", ActionGate(listener=listener))
        with pytest.raises(ActionBlocked, match="approval_required"):
            agent.call("payments.refund", args=args_a)  # no approval at all
        approval = Approval.grant(agent_id="bot-pay", tool="payments.refund", args=args_a, approver="alice",
                                  ttl_s=60, tenant="acme")
        agent.record_approval(approval)
        with pytest.raises(ActionBlocked) as info:
            agent.call("payments.refund", args=args_b, approval=approval)
        agent.call("payments.refund", args=dict(reversed(list(args_a.items()))), approval=approval)
        expired = Approval.grant(agent_id="bot-pay", tool="payments.refund", args=args_a, approver="alice",
                                 ttl_s=60, now_us=1_000_000)
        with pytest.raises(ActionBlocked, match="approval_expired"):
            agent.call("payments.refund", args=args_a, approval=expired)
        agent.call("search")  # other tools need no approval
        agent.close()
    assert info.value.code == "approval_mismatch" and "alice" in str(info.value)
    assert [tool for tool, _ in agent.ran] == ["payments.refund", "search"]

    events = actions(kafka, expected=6)
    [recorded] = [e for e in events if e["kind"] == "approval"]
    assert recorded["actor"] == {"type": "human", "id": "alice"}
    assert recorded["attributes"]["args_hash"] == args_hash(args_a)
    [ran] = [e for e in events if e["name"] == "payments.refund" and e["kind"] == "execute_tool"]
    assert ran["attributes"]["args_hash"] == recorded["attributes"]["args_hash"]
    assert ran["attributes"]["approval_id"] == recorded["attributes"]["approval_id"]
    refusals = [e["attributes"]["code"] for e in events if e["kind"] == "guardrail"]
    assert refusals == ["approval_required", "approval_mismatch", "approval_expired"]
