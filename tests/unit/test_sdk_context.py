"""Causality in the SDK: parents, traces and depths across nesting, threads and asyncio tasks,
and the start/end/point events an agent's calls turn into (read back from the client's spool)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from agentaudit.producers import ActionBlocked, AuditClient, wrap
from agentaudit.schemas import verify_streams
from tests.sdk_support import offline_client, records_of, spooled


@pytest.fixture
def audit(tmp_path: Path):
    client = offline_client(tmp_path)
    yield client
    client.close(timeout=0.2)


def _recorded(client: AuditClient, spool_dir: Path) -> list[dict]:
    client.close(timeout=0.2)
    return records_of(spool_dir)


def _by_phase(records: list[dict], name: str, phase: str) -> dict:
    (record,) = [r for r in records if r["name"] == name and r["phase"] == phase]
    return record


def test_nested_actions_link_to_their_parent_and_share_the_root_trace(audit: AuditClient, tmp_path: Path) -> None:
    with audit.action("invoke_agent", name="planner") as root:
        with audit.action("chat", name="gpt-4o") as call:
            call.set_cost(input_tokens=120, output_tokens=30, cost_usd=0.002, model="gpt-4o")
            with audit.action("execute_tool", name="search", input={"q": "x"}) as tool:
                assert audit.current_action_id() == tool.action_id
        audit.decision("route", reason="cheapest")
    assert audit.current_action_id() is None
    records = _recorded(audit, tmp_path)

    start, end = _by_phase(records, "planner", "start"), _by_phase(records, "planner", "end")
    assert start["action_id"] == end["action_id"] == root.action_id != start["event_id"] != end["event_id"]
    assert start["trace_id"] == root.action_id and start["parent_action_id"] is None and start["depth"] == 0
    chat_end = _by_phase(records, "gpt-4o", "end")
    assert (chat_end["parent_action_id"], chat_end["depth"], chat_end["trace_id"]) == (root.action_id, 1, root.action_id)
    assert (chat_end["input_tokens"], chat_end["output_tokens"], chat_end["model"]) == (120, 30, "gpt-4o")
    assert chat_end["cost_usd"] == pytest.approx(0.002) and chat_end["status"] == "ok"
    assert chat_end["latency_us"] == chat_end["end_time_us"] - chat_end["start_time_us"] >= 0
    tool_start = _by_phase(records, "search", "start")
    assert (tool_start["parent_action_id"], tool_start["depth"]) == (call.action_id, 2)
    decision = _by_phase(records, "route", "point")
    assert (decision["parent_action_id"], decision["depth"], decision["attributes"]) == (
        root.action_id, 1, {"reason": "cheapest"})
    assert [r["seq"] for r in records] == list(range(len(records)))  # one stream, numbered in emit order


def test_children_on_other_threads_find_their_parent_through_wrap_and_the_executor(
        audit: AuditClient, tmp_path: Path) -> None:
    def child(name: str) -> None:
        with audit.action("execute_tool", name=name):
            pass

    with audit.action("invoke_agent", name="root") as root:
        wrapped = threading.Thread(target=wrap(child), args=("wrapped",))
        wrapped.start()
        wrapped.join()
        with audit.executor(4) as pool:
            for f in [pool.submit(child, f"pooled-{i}") for i in range(4)]:
                f.result()
        bare = threading.Thread(target=child, args=("bare",))  # no context copy: a new trace
        bare.start()
        bare.join()
    records = _recorded(audit, tmp_path)
    for name in ["wrapped", *(f"pooled-{i}" for i in range(4))]:
        start = _by_phase(records, name, "start")
        assert (start["parent_action_id"], start["trace_id"], start["depth"]) == (root.action_id, root.action_id, 1)
    bare_start = _by_phase(records, "bare", "start")
    assert bare_start["parent_action_id"] is None and bare_start["trace_id"] == bare_start["action_id"]


def test_asyncio_tasks_inherit_the_action_that_created_them(audit: AuditClient, tmp_path: Path) -> None:
    async def tool(name: str) -> str:
        async with audit.action("execute_tool", name=name) as act:
            await asyncio.sleep(0.001)
            return act.action_id

    async def agent() -> tuple[str, list[str], str]:
        async with audit.action("invoke_agent", name="async-root") as root:
            ids = await asyncio.gather(*(asyncio.create_task(tool(f"t{i}")) for i in range(5)))
            with audit.action("plan", name="after") as after:
                pass
            return root.action_id, list(ids), after.action_id

    root_id, tool_ids, after_id = asyncio.run(agent())
    records = _recorded(audit, tmp_path)
    for i, tool_id in enumerate(tool_ids):
        start = _by_phase(records, f"t{i}", "start")
        assert (start["action_id"], start["parent_action_id"], start["depth"]) == (tool_id, root_id, 1)
    # concurrent siblings did not leak into each other or into what the parent does next
    assert _by_phase(records, "after", "start")["parent_action_id"] == root_id
    assert after_id not in tool_ids


def test_decorated_functions_record_arguments_result_and_errors(audit: AuditClient, tmp_path: Path) -> None:
    @audit.action("execute_tool", name="db.query")
    def query(sql: str) -> list[int]:
        return [1, 2]

    @audit.action("execute_tool")
    async def fetch(url: str) -> str:
        raise TimeoutError(f"{url} timed out")

    @audit.action("execute_tool", name="refund")
    def refund() -> None:
        raise ActionBlocked("needs approval", code="approval_required")

    assert query("select 1") == [1, 2]
    with pytest.raises(TimeoutError):
        asyncio.run(fetch("https://example.com"))
    with pytest.raises(ActionBlocked):
        refund()
    with pytest.raises(ZeroDivisionError), audit.action("execute_tool", name="divide"):
        _ = 1 / 0
    records = _recorded(audit, tmp_path)
    q_start, q_end = _by_phase(records, "db.query", "start"), _by_phase(records, "db.query", "end")
    assert q_start["input_digest"] and q_end["output_digest"] and q_start["input_body"] is None
    assert q_end["status"] == "ok" and q_end["payload_bytes"] > 0
    fetch_end = next(r for r in records if r["phase"] == "end" and r["name"].endswith("fetch"))
    assert (fetch_end["status"], fetch_end["error_type"]) == ("timeout", "TimeoutError")
    assert "timed out" in fetch_end["error_message"]
    assert _by_phase(records, "refund", "end")["status"] == "denied"
    divide = _by_phase(records, "divide", "end")
    assert (divide["status"], divide["error_type"]) == ("error", "ZeroDivisionError")


def test_point_events_links_and_emit(audit: AuditClient, tmp_path: Path) -> None:
    with audit.action("invoke_agent", name="support") as root:
        approval_id = audit.approval("alice", name="refund", input={"amount": 40})
        handoff_id = audit.handoff("billing-bot")
        audit.message("reply", content="hello", to="user-7", role="assistant")
    with audit.action("execute_tool", name="refund", agent="billing-bot", parent=handoff_id) as refund:
        refund.link(approval_id)
    audit.emit({"kind": "guardrail", "name": "pii-filter", "status": "ok", "model": "m1", "cost_usd": 0.5,
                "verdict": "pass", "attributes": {"rule": 7}})
    audit.emit({"kind": "not-a-kind", "name": "custom"})
    records = _recorded(audit, tmp_path)
    approval = _by_phase(records, "refund", "point")
    assert approval["kind"] == "approval" and approval["actor"] == {"type": "human", "id": "alice"}
    assert approval["agent_id"] == "agent-under-test" and approval["parent_action_id"] == root.action_id
    assert approval["input_digest"] and approval["attributes"]["approver"] == "alice"
    handoff = _by_phase(records, "billing-bot", "point")
    assert handoff["attributes"] == {"to_agent": "billing-bot", "from_agent": "agent-under-test"}
    assert _by_phase(records, "reply", "point")["attributes"] == {"to": "user-7", "role": "assistant"}
    refund_end = _by_phase(records, "refund", "end")
    assert refund_end["agent_id"] == "billing-bot" and refund_end["parent_action_id"] == handoff_id
    assert refund_end["links"] == [approval_id] and refund_end["stream_id"].endswith("/billing-bot")
    guard = _by_phase(records, "pii-filter", "point")
    assert (guard["kind"], guard["status"], guard["model"], guard["cost_usd"]) == ("guardrail", "ok", "m1", 0.5)
    assert guard["attributes"] == {"rule": "7", "verdict": "pass"}
    custom = _by_phase(records, "custom", "point")
    assert custom["kind"] == "other" and custom["attributes"] == {"kind": "not-a-kind"}


def test_every_agent_gets_its_own_valid_chain(tmp_path: Path) -> None:
    audit = offline_client(tmp_path)
    for i in range(30):
        audit.decision("step", agent=f"agent-{i % 3}")
    audit.close(timeout=0.2)
    recorded = spooled(tmp_path)
    streams = {r["stream_id"] for r, _ in recorded}
    assert streams == {f"{audit.instance_id}/agent-{i}" for i in range(3)}
    assert verify_streams(recorded) == []
    for stream in streams:
        assert [r["seq"] for r, _ in recorded if r["stream_id"] == stream] == list(range(10))
