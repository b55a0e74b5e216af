"""Explicit event times for recorded history: the SDK keeps a run's real times, and a time it cannot
use is named on the event (``agentaudit.uncaptured.<parameter>``), never raised into the agent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentaudit.control import Approval
from tests.sdk_support import offline_client, records_of

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
T0_US = int(T0.timestamp()) * 1_000_000


def _by(records: list[dict], kind: str, phase: str) -> dict:
    return next(r for r in records if r["kind"] == kind and r["phase"] == phase)


def test_actions_and_point_events_keep_the_times_they_are_given(tmp_path: Path) -> None:
    audit = offline_client(tmp_path)
    with audit.action("invoke_agent", name="bot", start_time_us=T0, end_time_us=T0 + timedelta(seconds=9)) as run:
        audit.message("user", content="refund order 7", role="user", time_us=T0_US + 1_000_000)
        with audit.action("execute_tool", name="orders.get", start_time_us=T0_US + 2_000_000,
                          end_time_us=T0_US + 2_250_000):
            pass
        audit.approval("alice", name="payments.refund", time_us=T0 + timedelta(seconds=3))
        audit.decision("route", time_us=T0_US + 4_000_000)
        audit.emit({"kind": "guardrail", "name": "pii", "time_us": T0_US + 5_000_000})
    audit.close(timeout=0.5)
    records = records_of(tmp_path)
    root_start, root_end = _by(records, "invoke_agent", "start"), _by(records, "invoke_agent", "end")
    assert root_start["event_time_us"] == T0_US and root_end["event_time_us"] == T0_US + 9_000_000
    assert (root_end["start_time_us"], root_end["end_time_us"], root_end["latency_us"]) == (
        T0_US, T0_US + 9_000_000, 9_000_000)
    tool_end = _by(records, "execute_tool", "end")
    assert (tool_end["start_time_us"], tool_end["latency_us"]) == (T0_US + 2_000_000, 250_000)
    assert [_by(records, k, "point")["event_time_us"] for k in ("message", "approval", "decision", "guardrail")] == [
        T0_US + 1_000_000, T0_US + 3_000_000, T0_US + 4_000_000, T0_US + 5_000_000]
    assert all(r["trace_id"] == run.action_id for r in records)
    assert not any(k.startswith("agentaudit.uncaptured.") for r in records for k in r["attributes"])


def test_a_start_alone_keeps_the_measured_duration(tmp_path: Path) -> None:
    audit = offline_client(tmp_path)
    with audit.action("chat", name="gpt-4o", start_time_us=T0_US):
        pass
    audit.close(timeout=0.5)
    end = _by(records_of(tmp_path), "chat", "end")
    assert end["start_time_us"] == T0_US and 0 <= end["latency_us"] < 5_000_000
    assert end["end_time_us"] == T0_US + end["latency_us"]


def test_unusable_times_are_named_on_the_event_and_the_clock_stands_in(tmp_path: Path) -> None:
    audit = offline_client(tmp_path)
    before = int(datetime.now(UTC).timestamp() * 1e6)
    with audit.action("execute_tool", name="naive", start_time_us=datetime(2026, 3, 1)):
        pass
    with audit.action("execute_tool", name="backwards", start_time_us=T0_US, end_time_us=T0_US - 1):
        pass
    with audit.action("execute_tool", name="seconds", start_time_us=1_700_000_000):  # seconds, not µs
        pass
    audit.message("text", time_us="yesterday")
    audit.decision("bool", time_us=True)
    audit.close(timeout=0.5)
    records = records_of(tmp_path)
    by_name = {(r["name"], r["phase"]): r for r in records}
    naive = by_name[("naive", "start")]
    assert naive["event_time_us"] >= before
    assert "naive datetime" in naive["attributes"]["agentaudit.uncaptured.start_time_us"]
    backwards = by_name[("backwards", "end")]
    assert backwards["start_time_us"] == T0_US and backwards["end_time_us"] >= T0_US
    assert "before start_time_us" in backwards["attributes"]["agentaudit.uncaptured.end_time_us"]
    assert "outside 2001..2100" in by_name[("seconds", "start")]["attributes"]["agentaudit.uncaptured.start_time_us"]
    for name in ("text", "bool"):
        point = by_name[(name, "point")]
        assert point["event_time_us"] >= before and point["attributes"]["agentaudit.uncaptured.time_us"].startswith(
            "time_us: ")


def test_args_hash_is_what_an_approval_of_the_same_arguments_records(tmp_path: Path) -> None:
    audit = offline_client(tmp_path)
    args = {"order": 7, "amount": 20}
    grant = Approval.grant(agent_id="agent-under-test", tool="payments.refund", args=args, approver="alice")
    audit.approval("alice", grant=grant)
    assert audit.args_hash({"amount": 20, "order": 7}) == audit.args_hash(args) != audit.args_hash({"order": 8})
    assert isinstance(audit.args_hash(float("nan")), str)  # not JSON: still a hash, never an error
    audit.close(timeout=0.5)
    approval = _by(records_of(tmp_path), "approval", "point")
    assert approval["attributes"]["args_hash"] == audit.args_hash(args)
