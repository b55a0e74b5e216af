"""Approvals are bound to the exact arguments, the agent, the tool and a deadline."""

from __future__ import annotations

import pytest

from agentaudit.control import (
    ActionBlocked,
    ControlListener,  # noqa: F401 - the module imports cleanly
)
from agentaudit.control.approvals import Approval, args_hash, canonical_json

NOW = 1_700_000_000_000_000
ARGS_A = {"amount": 40, "currency": "EUR", "to": "acct-1"}
ARGS_B = {"amount": 4000, "currency": "EUR", "to": "acct-1"}


def approval(**over) -> Approval:
    fields = dict(agent_id="bot", tool="payments.refund", args=ARGS_A, approver="alice", ttl_s=60, now_us=NOW)
    fields.update(over)
    return Approval.grant(**fields)


def test_hash_is_canonical_key_order_and_spacing_do_not_matter() -> None:
    assert args_hash({"b": 1, "a": [1, 2]}) == args_hash({"a": [1, 2], "b": 1})
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert args_hash(ARGS_A) != args_hash(ARGS_B)
    assert len(args_hash(ARGS_A)) == 64


def test_non_json_arguments_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="JSON"):
        args_hash({"x": object()})


def test_approval_for_a_authorises_a_only() -> None:
    grant = approval()
    grant.verify(agent_id="bot", tool="payments.refund", args=dict(reversed(list(ARGS_A.items()))), now_us=NOW + 1)
    with pytest.raises(ActionBlocked) as info:
        grant.verify(agent_id="bot", tool="payments.refund", args=ARGS_B, now_us=NOW + 1)
    assert info.value.code == "approval_mismatch"
    assert "alice" in str(info.value)


@pytest.mark.parametrize("agent,tool", [("other-bot", "payments.refund"), ("bot", "payments.transfer")])
def test_approval_does_not_transfer_to_another_agent_or_tool(agent: str, tool: str) -> None:
    with pytest.raises(ActionBlocked, match="approval_mismatch"):
        approval().verify(agent_id=agent, tool=tool, args=ARGS_A, now_us=NOW + 1)


def test_expired_approval_is_refused() -> None:
    with pytest.raises(ActionBlocked) as info:
        approval(ttl_s=1).verify(agent_id="bot", tool="payments.refund", args=ARGS_A, now_us=NOW + 1_000_000)
    assert info.value.code == "approval_expired"


def test_approval_round_trips_through_its_event_attributes() -> None:
    grant = approval()
    record = {"event_id": "e1", "tenant": "", "event_time_us": NOW, "attributes": grant.attributes(),
              "input_body": None}
    back = Approval.from_record(record)
    assert back.args_hash == grant.args_hash and back.approver == grant.approver
    assert back.expires_at_us == grant.expires_at_us
    with pytest.raises(ValueError, match="not an approval"):
        Approval.from_record({"event_id": "e2", "attributes": {}})
