"""`agentaudit mcp-proxy` end to end: the mcp package's real Client talks to the real proxy process, which
spawns (stdio) or calls (streamable HTTP) a real MCP server; the real tansu broker carries the control
commands, approvals and events, and the real sink stores them in chDB.

What is shown: a tool the inline guard forbids is refused before the server runs it (the server logs every
call it runs), a call that needs an approval is held until one bound to its arguments arrives, a pause (until
cleared) and a kill switch each stop the next call, and every forwarded call is stored as an execute_tool action under the
session's root action."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from agentaudit.control import ControlIssuer
from agentaudit.control.approvals import Approval
from agentaudit.infra.kafka import read_all
from agentaudit.producers import AuditClient
from agentaudit.schemas import ControlType
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.control_support import write_rules
from tests.mcp_proxy_support import (
    AGENTAUDIT,
    DIGEST_KEY,
    SERVER,
    calls_seen,
    free_port,
    proxy_env,
    start_http,
    stop,
    store_events,
    stored,
    text_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.slow]


def grant_later(kafka: KafkaSettings, tmp_path: Path, agent: str, args: dict[str, Any], delay: float) -> threading.Thread:
    """Alice approves ``payments.refund`` with exactly ``args`` after ``delay`` s, recorded through the SDK."""
    def run() -> None:
        time.sleep(delay)
        with AuditClient(kafka=kafka, tenant="acme", agent="approvals-console", digest_key=DIGEST_KEY,
                         spool_dir=tmp_path / "spool-console") as console:
            grant = Approval.grant(agent_id=agent, tool="payments.refund", args=args, approver="alice", ttl_s=120)
            console.approval("alice", grant=grant)
            assert console.flush(10)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


async def call_until_refused(client: Client, calls: Path, timeout: float = 10.0) -> Any:  # noqa: ASYNC109 - a polling deadline for the test, not a cancel scope
    """Call `search` until the proxy refuses it; each call that passed must have reached the server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = len(calls_seen(calls))
        result = await client.call_tool("search", {"query": "after kill"})
        if result.is_error:
            assert len(calls_seen(calls)) == before  # the refused call never reached the server
            return result
        await anyio.sleep(0.05)
    raise AssertionError(f"the pause or kill was not obeyed within {timeout}s")


async def call_until_passes(client: Client, calls: Path, timeout: float = 10.0) -> Any:  # noqa: ASYNC109 - a polling deadline for the test, not a cancel scope
    """Call `search` until the proxy forwards it again (after a clear)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await client.call_tool("search", {"query": "after clear"})
        if not result.is_error:
            assert calls_seen(calls)[-1] == {"tool": "search", "args": {"query": "after clear"}}
            return result
        await anyio.sleep(0.05)
    raise AssertionError(f"the clear was not obeyed within {timeout}s")


def count_events(kafka: KafkaSettings) -> int:
    return len(read_all(kafka, kafka.topics.actions, timeout=20, idle=2.0))


def test_stdio_proxy_refuses_holds_for_approval_obeys_kill_and_records_the_session(
        kafka_settings_factory: Callable[..., KafkaSettings], store_settings_factory: Callable[[], StoreSettings],
        store_factory: Callable[..., Any], group_factory: Callable[..., str], tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    calls = tmp_path / "calls.jsonl"
    agent = "mcp-bot"
    with ControlIssuer(kafka) as issuer:  # in force before the proxy starts: its first check sees it
        issuer.publish(issuer.command(ControlType.REQUIRE_APPROVAL, agent_id=agent, tool="payments.refund",
                                      actor="risk", reason="refunds need a human", tenant="acme"))
        issuer.publish(issuer.command(ControlType.BLOCK_TOOL, agent_id=agent, tool="fail", actor="risk",
                                      reason="flaky tool under review", tenant="acme"))
    env = proxy_env(kafka, tmp_path, agent=agent, calls=calls)
    rules = write_rules(tmp_path)  # guard.forbidden-tool (enforce): shell.exec, fs.rmtree
    params = StdioServerParameters(command=AGENTAUDIT, args=["mcp-proxy", "--stdio", "--hide-blocked", "--guard-rules",
                                                             str(rules), "--approval-timeout", "6", "--", *SERVER],
                                   env=env, cwd=str(Path(__file__).resolve().parents[2]))
    approved = {"order": "o-17", "amount": 40}
    other = {"order": "o-17", "amount": 4000}

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Client(params) as client:
            out["listed"] = sorted(t.name for t in (await client.list_tools()).tools)
            out["search"] = await client.call_tool("search", {"query": "refund policy"})
            out["shell"] = await client.call_tool("shell.exec", {"cmd": "rm -rf /"})  # hidden, called anyway
            out["variant"] = await client.call_tool("Shell.Exec", {"cmd": "id"})
            out["blocked"] = await client.call_tool("fail", {"reason": "x"})  # hidden by the block command
            granting = grant_later(kafka, tmp_path, agent, approved, delay=1.5)
            started = time.monotonic()
            out["refund"] = await client.call_tool("payments.refund", approved)
            out["held_s"] = time.monotonic() - started
            granting.join()
            out["refund_other"] = await client.call_tool("payments.refund", other)  # A's approval is not B's
            with ControlIssuer(kafka) as issuer:
                pause = issuer.pause(agent, actor="alice", reason="looking into it", tenant="acme")
                out["paused"] = await call_until_refused(client, calls)
                issuer.clear(pause, actor="alice", note="all good")
                out["resumed"] = await call_until_passes(client, calls)
                issuer.kill(agent, actor="alice", reason="runaway tool loop", tenant="acme")
            out["killed"] = await call_until_refused(client, calls)
        return out

    out = anyio.run(scenario)
    assert out["listed"] == ["crash", "payments.refund", "search"]  # hidden: shell.exec (guard rule), fail (block command)
    assert out["blocked"].is_error and "tool_blocked" in text_of(out["blocked"]) and "under review" in text_of(out["blocked"])
    assert not out["search"].is_error and "3 results for refund policy" in text_of(out["search"])
    assert out["shell"].is_error and "guard_denied" in text_of(out["shell"]), text_of(out["shell"])
    assert out["variant"].is_error and "unknown_tool" in text_of(out["variant"])
    assert not out["refund"].is_error and "refunded 40 on o-17" in text_of(out["refund"]), text_of(out["refund"])
    assert 1.4 < out["held_s"] < 6, out["held_s"]  # held until alice's approval arrived
    assert out["refund_other"].is_error and "approval_required" in text_of(out["refund_other"])
    assert out["paused"].is_error and "paused" in text_of(out["paused"]) and "looking into it" in text_of(out["paused"])
    assert not out["resumed"].is_error
    assert out["killed"].is_error and "killed" in text_of(out["killed"]) and "runaway tool loop" in text_of(out["killed"])
    seen = calls_seen(calls)
    assert [c["tool"] for c in seen[:2]] == ["search", "payments.refund"]
    assert seen[1]["args"] == approved
    assert not [c for c in seen if c["tool"] in ("shell.exec", "fail")], seen  # the server never ran them
    assert not [c for c in seen if c["tool"] == "payments.refund" and c["args"] == other]
    print(f"\nmcp-proxy stdio: approval held the call {out['held_s']:.2f}s; server ran {len(seen)} calls")

    store = store_settings_factory()
    client = store_factory(store)
    store_events(kafka, store, client, group_factory(), count_events(kafka))
    rows = stored(client)
    ends = [r for r in rows if r.phase == "end" and r.agent_id == agent]
    root = next(r for r in ends if r.kind == "invoke_agent")
    tools = [r for r in ends if r.kind == "execute_tool"]
    assert root.name == "mcp:tools-under-test" and root.parent_action_id == "" and root.depth == 0
    assert {(r.trace_id, r.parent_action_id) for r in tools} == {(root.trace_id, root.action_id)}
    names = [r.name for r in tools]
    assert names.count("payments.refund") == 1 and "shell.exec" not in names and "search" in names
    refund = next(r for r in tools if r.name == "payments.refund")
    assert refund.status == "ok" and refund.input_digest and refund.output_digest and refund.latency_us > 0
    assert refund.attributes.get("approval_id") and refund.attributes.get("mcp.transport") == "stdio"
    assert "o-17" not in str(refund.attributes) and "rm -rf" not in str([r.attributes for r in rows])
    denials = {(r.attributes.get("guarded_name"), r.attributes.get("code") or r.name) for r in rows
               if r.kind == "guardrail" and r.status == "denied"}
    assert {("shell.exec", "guard:guard.forbidden-tool"), ("Shell.Exec", "unknown_tool"),
            ("payments.refund", "approval_required"), ("search", "killed"), ("search", "paused"),
            ("fail", "tool_blocked")} <= denials, denials
    assert {r.trace_id for r in rows if r.kind == "guardrail" and r.agent_id == agent} == {root.trace_id}


def test_http_proxy_refuses_forbidden_tool_passes_others_and_obeys_kill(
        kafka_settings_factory: Callable[..., KafkaSettings], store_settings_factory: Callable[[], StoreSettings],
        store_factory: Callable[..., Any], group_factory: Callable[..., str], tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    calls = tmp_path / "calls.jsonl"
    agent = "mcp-http-bot"
    env = proxy_env(kafka, tmp_path, agent=agent, calls=calls)
    upstream_port, proxy_port = free_port(), free_port()
    upstream = start_http([*SERVER, "http", str(upstream_port)], env, upstream_port)
    proxy = None
    try:
        proxy = start_http([AGENTAUDIT, "mcp-proxy", "--listen", f"127.0.0.1:{proxy_port}", "--upstream",
                            f"http://127.0.0.1:{upstream_port}/mcp", "--guard-rules", str(write_rules(tmp_path))],
                           env, proxy_port)

        async def scenario() -> dict[str, Any]:
            out: dict[str, Any] = {}
            async with Client(f"http://127.0.0.1:{proxy_port}/mcp") as client:
                out["listed"] = sorted(t.name for t in (await client.list_tools()).tools)
                out["search"] = await client.call_tool("search", {"query": "flights"})
                out["failing"] = await client.call_tool("fail", {"reason": "disk full"})
                out["shell"] = await client.call_tool("shell.exec", {"cmd": "cat /etc/shadow"})
            out["latency_ms"] = {}
            for label, port in (("direct", upstream_port), ("proxied", proxy_port)):
                async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as client:
                    spent = []
                    for i in range(30):
                        started = time.perf_counter()
                        await client.call_tool("search", {"query": f"timing {i}"})
                        spent.append((time.perf_counter() - started) * 1000)
                    out["latency_ms"][label] = sorted(spent)[len(spent) // 2]
            async with Client(f"http://127.0.0.1:{proxy_port}/mcp", mode="legacy") as client:  # with a session id
                out["session"] = [await client.call_tool("search", {"query": q}) for q in ("a", "b")]
            with ControlIssuer(kafka) as issuer:
                issuer.kill(agent, actor="alice", reason="stop now", tenant="acme")
            async with Client(f"http://127.0.0.1:{proxy_port}/mcp") as client:
                out["killed"] = await call_until_refused(client, calls)
            return out

        out = anyio.run(scenario)
    finally:
        if proxy is not None:
            stop(proxy)
        stop(upstream)
    assert "shell.exec" in out["listed"]  # shown by default (--show-blocked), refused when called
    assert not out["search"].is_error and "3 results for flights" in text_of(out["search"])
    assert out["failing"].is_error
    assert out["shell"].is_error and "guard_denied" in text_of(out["shell"])
    assert [text_of(r) for r in out["session"]] == ["3 results for a", "3 results for b"]
    print(f"\nmcp-proxy HTTP: median tools/call {out['latency_ms']['direct']:.1f} ms direct, "
          f"{out['latency_ms']['proxied']:.1f} ms through the proxy (30 calls each, same session)")
    assert out["killed"].is_error and "killed" in text_of(out["killed"])
    seen = calls_seen(calls)
    assert [c["tool"] for c in seen[:2]] == ["search", "fail"] and len(seen) == 2 + 60 + 2
    assert not [c for c in seen if c["tool"] == "shell.exec"]

    store = store_settings_factory()
    client = store_factory(store)
    store_events(kafka, store, client, group_factory(), count_events(kafka))
    rows = [r for r in stored(client) if r.agent_id == agent]
    ends = [r for r in rows if r.phase == "end"]
    tools = [r for r in ends if r.kind == "execute_tool"]
    by_parent = Counter(r.parent_action_id for r in tools)
    timed = next(parent for parent, n in by_parent.items() if n == 30)  # the timing session: one root, 30 calls
    tools = [r for r in tools if r.parent_action_id != timed]
    assert [(r.name, r.status) for r in tools] == [("search", "ok"), ("fail", "error"), ("search", "ok"),
                                                   ("search", "ok")], [(r.name, r.status) for r in tools]
    assert {r.attributes.get("mcp.transport") for r in tools} == {"http"}
    roots = {r.action_id: r for r in rows if r.kind == "invoke_agent"}
    for tool in tools:  # each call sits under a root action, in that root's trace
        root = roots[tool.parent_action_id]
        assert tool.trace_id == root.trace_id and root.name == "mcp:tools-under-test"
    # 2026-07-28 HTTP has no session: a call is its own trace; a session (Mcp-Session-Id) is one trace
    assert tools[0].trace_id != tools[1].trace_id
    assert tools[2].trace_id == tools[3].trace_id and tools[2].parent_action_id == tools[3].parent_action_id
    assert tools[2].trace_id not in (tools[0].trace_id, tools[1].trace_id)
