"""The control plane through the SDK (AuditClient) on the real broker: kill switch, inline guard and
approvals raise ActionBlocked into agent code before the action runs, and every refusal is recorded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentaudit.control import ControlIssuer
from agentaudit.control.approvals import Approval, args_hash
from agentaudit.infra.kafka import read_all
from agentaudit.producers import ActionBlocked, AuditClient
from agentaudit.schemas import AvroCodec, ControlType
from tests.authority_support import make_operators
from tests.control_support import write_rules

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def events(kafka, expected: int | None = None) -> list[dict]:
    """Every action event; ``expected`` stops early once that many arrived (None: until 2 s of quiet)."""
    codec = AvroCodec("action")
    return [codec.decode(m.value()) for m in read_all(kafka, kafka.topics.actions, expected=expected, timeout=20,
                                                       idle=2.0)]


def test_kill_switch_reaches_sdk_actions_and_clear_resumes(kafka_settings_factory, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = kafka_settings_factory(partitions=3)
    # Signed: the SDK reads AGENTAUDIT_AUTHORITY_FILE when the client is built, and obeys alice's signed kill.
    operators = make_operators(tmp_path)
    monkeypatch.setenv("AGENTAUDIT_AUTHORITY_FILE", str(operators.path))
    ran: list[str] = []
    with AuditClient(kafka=kafka, tenant="acme", agent="bot-1", spool_dir=tmp_path / "spool", control=True) as audit:
        with audit.action("execute_tool", name="search"):
            ran.append("search")  # the first action waits until the control log has been read
        with ControlIssuer(kafka) as forger:  # unsigned, naming alice: not obeyed
            forger.kill("bot-1", actor="alice", reason="forged", tenant="acme")
        time.sleep(0.5)
        with audit.action("execute_tool", name="search"):
            ran.append("not killed by a forgery")
        with ControlIssuer(kafka, key=operators.alice) as issuer:
            started = time.monotonic()
            kill = issuer.kill("bot-1", actor="alice", reason="runaway loop", tenant="acme")
            while True:
                try:
                    with audit.action("chat", name="gpt-4o"):
                        ran.append("chat")
                except ActionBlocked as exc:
                    blocked = exc
                    break
                assert time.monotonic() - started < 5, "kill not obeyed within 5 s"
                time.sleep(0.002)
            delay = time.monotonic() - started
            print(f"\nSDK kill switch: publish -> AuditClient.action raises in {delay * 1000:.1f} ms")
            assert blocked.code == "killed" and blocked.command_id == kill.command_id
            with audit.action("execute_tool", name="search", agent="bot-2"):  # another agent of the client runs
                ran.append("bot-2")
            issuer.clear(kill, actor="alice", note="fixed")
        deadline = time.monotonic() + 5
        while True:
            try:
                with audit.action("execute_tool", name="search"):
                    ran.append("resumed")
                break
            except ActionBlocked:
                assert time.monotonic() < deadline
                time.sleep(0.005)
        assert audit.flush(10)
    assert "resumed" in ran and ran[-2] == "bot-2"
    recorded = [e for e in events(kafka) if e["kind"] == "guardrail"]  # more if the resume loop met the kill
    assert recorded and recorded[0]["attributes"]["code"] == "killed"
    assert recorded[0]["attributes"]["command_id"] == kill.command_id and recorded[0]["status"] == "denied"


def test_sdk_guard_denies_before_the_tool_body_runs(kafka_settings_factory, tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    ran: list[str] = []
    with AuditClient(kafka=kafka, tenant="acme", agent="bot-1", spool_dir=tmp_path / "spool",
                     guard_rules=str(write_rules(tmp_path))) as audit:
        with audit.action("invoke_agent", name="bot-1"):
            with pytest.raises(ActionBlocked) as info:
                with audit.action("execute_tool", name="shell.exec", input={"cmd": "rm -rf /"}):
                    ran.append("shell.exec")
            with audit.action("execute_tool", name="http.post", input={"url": "https://x"}):
                ran.append("http.post")
        assert audit.flush(10)
    assert ran == ["http.post"] and info.value.rule_id == "guard.forbidden-tool"
    recorded = events(kafka, expected=6)  # agent start/end, http.post start/end, 2 guardrail
    assert not [e for e in recorded if e["name"] == "shell.exec" and e["kind"] == "execute_tool"]
    notes = {e["name"]: e for e in recorded if e["kind"] == "guardrail"}
    deny = notes["guard:guard.forbidden-tool"]
    assert deny["status"] == "denied" and deny["attributes"]["guarded_name"] == "shell.exec"
    root = next(e for e in recorded if e["kind"] == "invoke_agent")
    assert deny["parent_action_id"] == root["action_id"] and deny["trace_id"] == root["trace_id"]
    assert notes["guard:guard.egress-simulated"]["attributes"]["decision"] == "would_deny"


def test_sdk_approval_for_args_a_does_not_authorise_args_b(kafka_settings_factory, tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    args_a, args_b = {"order": "o-1", "amount": 40}, {"order": "o-1", "amount": 4000}
    with ControlIssuer(kafka) as issuer:
        issuer.publish(issuer.command(ControlType.REQUIRE_APPROVAL, agent_id="bot-pay", tool="payments.refund",
                                      actor="risk", reason="refunds need a human", tenant="acme"))
    ran: list[dict] = []
    with AuditClient(kafka=kafka, tenant="acme", agent="bot-pay", spool_dir=tmp_path / "spool", control=True) as audit:
        with pytest.raises(ActionBlocked, match="approval_required"):
            with audit.action("execute_tool", name="payments.refund", input=args_a):
                ran.append(args_a)
        grant = Approval.grant(agent_id="bot-pay", tool="payments.refund", args=args_a, approver="alice", ttl_s=60)
        audit.approval("alice", grant=grant)
        with pytest.raises(ActionBlocked, match="approval_mismatch"):
            with audit.action("execute_tool", name="payments.refund", input=args_b, approval=grant):
                ran.append(args_b)
        with audit.action("execute_tool", name="payments.refund", input=args_a, approval=grant):
            ran.append(args_a)
        assert audit.flush(10)
    assert ran == [args_a]
    recorded = events(kafka, expected=6)  # 2 refusals, the approval, refund start/end
    [approval] = [e for e in recorded if e["kind"] == "approval"]
    # recorded keyed with the tenant's digest key: the approval and the action still match (the rules bind
    # them), and the stored value is not the plain SHA-256 anyone could brute-force the arguments from
    bound = approval["attributes"]["args_hash"]
    assert bound != args_hash(args_a) and len(bound) == 64 and approval["actor"]["id"] == "alice"
    starts = [e for e in recorded if e["name"] == "payments.refund" and e["kind"] == "execute_tool"]
    assert starts and all(e["attributes"]["args_hash"] == bound for e in starts)
    assert sorted(e["attributes"]["code"] for e in recorded if e["kind"] == "guardrail") == [
        "approval_mismatch", "approval_required"]


def test_approval_is_checked_even_without_control_or_guard(kafka_settings_factory, tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    grant = Approval.grant(agent_id="bot", tool="deploy.release", args={"v": "1.2"}, approver="alice", ttl_s=60)
    with AuditClient(kafka=kafka, tenant="acme", agent="bot", spool_dir=tmp_path / "spool") as audit:
        with pytest.raises(ActionBlocked, match="approval_mismatch"):
            with audit.action("execute_tool", name="deploy.release", input={"v": "1.3"}, approval=grant):
                pytest.fail("ran with arguments nobody approved")
