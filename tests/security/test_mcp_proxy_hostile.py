"""`agentaudit mcp-proxy` under a hostile MCP client: it cannot get a forbidden or hidden tool past the gate
by spelling its name differently (case, Unicode look-alikes, invisible characters, padding), by calling a
hidden tool directly, or by sending huge, deep or oddly typed arguments; and raw malformed JSON-RPC on stdio
or HTTP never takes the proxy down: after every attack it still serves the next good call.

The upstream server logs every call it runs; the tests assert it never ran the forbidden tool. The broker is
the real tansu of the fixtures (the proxy's control listener and SDK need one)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from agentaudit.settings import KafkaSettings
from tests.control_support import write_rules
from tests.mcp_proxy_support import (
    AGENTAUDIT,
    ROOT,
    SERVER,
    calls_seen,
    free_port,
    proxy_env,
    start_http,
    stop,
    text_of,
)
from tests.process_lines import LineReader

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.slow]

#: Spellings of the forbidden `shell.exec` that a lax gate might treat as another tool, or a lax server as it.
VARIANTS = ["SHELL.EXEC", "Shell.exec", "shell.exec ", " shell.exec", "shell.exec\u200b", "\u200bshell.exec",
            "shell\u2024exec", "ｓｈｅｌｌ.exec", "shell.ex\u0435c", "shell.exec\x00", "shell.exec\n", "shell/exec",
            "shell.exec\u0301", "x" * 10_000, ""]


def proxy_args(rules: Path, *extra: str) -> list[str]:
    return ["mcp-proxy", "--stdio", "--hide-blocked", "--guard-rules", str(rules), "--approval-timeout", "0",
            *extra, "--", *SERVER]


def test_a_client_cannot_spell_or_size_its_way_past_the_gate(kafka_settings_factory: Callable[..., KafkaSettings],
                                                            tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    calls = tmp_path / "calls.jsonl"
    env = proxy_env(kafka, tmp_path, agent="hostile-bot", calls=calls, AGENTAUDIT_MCP_MAX_ARGUMENT_BYTES="65536")
    params = StdioServerParameters(command=AGENTAUDIT, args=proxy_args(write_rules(tmp_path)), env=env, cwd=str(ROOT))

    async def attack() -> dict[str, Any]:
        out: dict[str, Any] = {"variants": {}}
        async with Client(params) as client:
            out["listed"] = {t.name for t in (await client.list_tools()).tools}
            out["direct"] = await client.call_tool("shell.exec", {"cmd": "id"})  # hidden, called by name anyway
            for name in VARIANTS:
                out["variants"][name] = await client.call_tool(name, {"cmd": "id"})
            out["huge"] = await client.call_tool("search", {"query": "q" * 200_000})
            wide = {f"k{i}": i for i in range(20_000)}  # within the byte cap? no: ~240 KB of keys
            out["wide"] = await client.call_tool("search", {"query": "w", "extra": wide})
            out["after"] = await client.call_tool("search", {"query": "still alive"})
        return out

    out = anyio.run(attack)
    assert "shell.exec" not in out["listed"] and "search" in out["listed"]
    assert out["direct"].is_error and "guard_denied" in text_of(out["direct"])
    for name, result in out["variants"].items():
        assert result.is_error, f"{name!r} was not refused: {text_of(result)}"
        assert "unknown_tool" in text_of(result) or "bad_tool_name" in text_of(result), (name, text_of(result))
    assert out["huge"].is_error and "arguments_too_large" in text_of(out["huge"])
    assert out["wide"].is_error and "arguments_too_large" in text_of(out["wide"])
    assert not text_of(out["after"]).startswith("arguments") and "3 results for still alive" in text_of(out["after"])
    ran = calls_seen(calls)
    print(f"\nmcp-proxy: {len(VARIANTS)} spellings refused; server ran {[c['args'] for c in ran]}")
    assert [c["tool"] for c in ran] == ["search"], ran  # only the good call
    assert not [c for c in ran if c["tool"] == "shell.exec"]
    assert all(len(json.dumps(c["args"])) < 1000 for c in ran)


def _send(proc: subprocess.Popen[bytes], raw: bytes) -> None:
    assert proc.stdin is not None
    proc.stdin.write(raw if raw.endswith(b"\n") else raw + b"\n")
    proc.stdin.flush()


def _read_reply(proc: subprocess.Popen[bytes], lines: LineReader[bytes], want_id: int,
                timeout: float = 20.0) -> dict[str, Any]:
    """The JSON-RPC response with ``want_id`` (other lines: error replies to garbage, notifications)."""
    deadline = time.monotonic() + timeout
    while (line := lines.next_line(deadline)) is not None:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") == want_id:
            return message
    assert not lines.closed, f"the proxy closed stdout (exit {proc.poll()})"
    raise AssertionError(f"no reply to id {want_id} within {timeout}s")


GARBAGE = [b"not json at all", b"{", b"[]", b"[1,2,3]", b"null", b'"string"', b"\xff\xfe\x00garbage",
           b'{"jsonrpc":"2.0"}', b'{"jsonrpc":"1.0","id":7,"method":"tools/call"}',
           b'{"jsonrpc":"2.0","id":8,"method":"tools/call"}',
           b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":42}}',
           b'{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"search","arguments":[1,2]}}',
           b'{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":["shell.exec"],"arguments":{}}}',
           b'{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"shell.exec","arguments":"x"}}',
           b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}',
           b'{"jsonrpc":"2.0","id":13,"method":"no/such/method"}',
           (b'{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"shell.exec","arguments":{"cmd":"id"},'
            b'"name":"search"}}'),
           (b'{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"search","arguments":{"query":"x"},'
            b'"name":"shell.exec"}}'),
           b'{"jsonrpc":"2.0","id":16,"method":"tools/call","params":{"name":"search","arguments":{"query":'
           + b'{"d":' * 20_000 + b"1" + b"}" * 20_000 + b"}}}",
           b"[" * 100_000]


def test_malformed_json_rpc_on_stdio_never_crashes_the_proxy(kafka_settings_factory: Callable[..., KafkaSettings],
                                                            tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    calls = tmp_path / "calls.jsonl"
    env = proxy_env(kafka, tmp_path, agent="garbage-bot", calls=calls)
    proc = subprocess.Popen([AGENTAUDIT, *proxy_args(write_rules(tmp_path))], env=env, cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: LineReader[bytes] = LineReader(proc)
    try:
        _send(proc, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}).encode())
        assert "result" in _read_reply(proc, lines, 1)
        _send(proc, b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        for raw in GARBAGE:
            _send(proc, raw)
        good = {"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                "params": {"name": "search", "arguments": {"query": "after garbage"}}}
        _send(proc, json.dumps(good).encode())
        reply = _read_reply(proc, lines, 99, timeout=40)
        assert "3 results for after garbage" in json.dumps(reply["result"]), reply
        assert proc.poll() is None
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        assert proc.stdout is not None
        proc.stdout.close()
    ran = calls_seen(calls)
    assert not [c for c in ran if c["tool"] == "shell.exec"], ran  # duplicate keys did not smuggle it through
    print(f"\nmcp-proxy stdio after {len(GARBAGE)} malformed messages: server ran {[c['tool'] for c in ran]}")


def test_malformed_http_requests_never_crash_the_proxy(kafka_settings_factory: Callable[..., KafkaSettings],
                                                       tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    calls = tmp_path / "calls.jsonl"
    env = proxy_env(kafka, tmp_path, agent="http-garbage-bot", calls=calls)
    port = free_port()
    proxy = start_http([AGENTAUDIT, "mcp-proxy", "--listen", f"127.0.0.1:{port}", "--guard-rules",
                        str(write_rules(tmp_path)), "--", *SERVER], env, port)
    url = f"http://127.0.0.1:{port}/mcp"
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    try:
        statuses = []
        for raw in [*GARBAGE, b"x" * (8 * 1024 * 1024)]:
            statuses.append(httpx.post(url, content=raw, headers=headers, timeout=30).status_code)
        statuses.append(httpx.post(url, content=b"{}", headers={"Host": "evil.example", **headers}, timeout=10)
                        .status_code)  # DNS rebinding: a foreign Host is refused on loopback
        assert all(s < 500 for s in statuses), statuses
        assert statuses[-1] in (400, 403, 421), statuses[-1]

        async def good() -> Any:
            async with Client(url) as client:
                return await client.call_tool("search", {"query": "after http garbage"}), \
                    await client.call_tool("shell.exec", {"cmd": "id"})

        ok, denied = anyio.run(good)
        assert "3 results for after http garbage" in text_of(ok) and denied.is_error
        assert proxy.poll() is None
    finally:
        stop(proxy)
    assert not [c for c in calls_seen(calls) if c["tool"] == "shell.exec"]


def test_an_upstream_that_dies_mid_call_never_takes_the_proxy_down(
        kafka_settings_factory: Callable[..., KafkaSettings], tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    calls = tmp_path / "calls.jsonl"
    env = proxy_env(kafka, tmp_path, agent="dying-upstream-bot", calls=calls)
    params = StdioServerParameters(command=AGENTAUDIT, args=proxy_args(write_rules(tmp_path)), env=env, cwd=str(ROOT))

    async def run() -> list[Any]:
        async with Client(params, read_timeout_seconds=30) as client:
            out = [await client.call_tool("search", {"query": "before"}), await client.call_tool("crash", {}),
                   await client.call_tool("search", {"query": "after"})]
            with pytest.raises(MCPError, match="upstream_unavailable"):  # a JSON-RPC error from the live proxy
                await client.session.list_tools()
            out.append(await client.call_tool("search", {"query": "still answered"}))
            return out

    before, crashed, after, last = anyio.run(run)
    assert "3 results for before" in text_of(before)
    for result in (crashed, after, last):  # answered by the proxy, which is still there
        assert result.is_error and "upstream_unavailable" in text_of(result), text_of(result)
    assert [c["tool"] for c in calls_seen(calls)] == ["search", "crash"]
