"""Helpers of the mcp-proxy tests: the real `agentaudit mcp-proxy` process in front of the real tools server
(tests/fixtures/mcp_tools_server.py), driven by the mcp package's real Client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.child_env import child_env
from tests.sink_support import drain

ROOT = Path(__file__).resolve().parents[1]
AGENTAUDIT = str(Path(sys.executable).with_name("agentaudit"))
DIGEST_KEY = "mcp-proxy-test-digest-key-0123456789"
SERVER = [sys.executable, "-m", "tests.fixtures.mcp_tools_server"]
_LOGS: dict[int, Any] = {}  # stderr files of started processes, closed by stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proxy_env(kafka: KafkaSettings, tmp_path: Path, *, agent: str, calls: Path, **extra: str) -> dict[str, str]:
    """The proxy's environment: the test's broker and uuid topics, its agent and tenant, a shared digest key."""
    env = child_env()
    env.update({"AGENTAUDIT_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "AGENTAUDIT_TENANT": "acme",
                "AGENTAUDIT_AGENT_ID": agent, "AGENTAUDIT_SPOOL_DIR": str(tmp_path / f"spool-{agent}"),
                "AGENTAUDIT_DIGEST_KEY": DIGEST_KEY, "MCP_CALLS_FILE": str(calls), "PYTHONPATH": str(ROOT)})
    for name, topic in kafka.topics.model_dump().items():
        env[f"AGENTAUDIT_TOPIC_{name.upper()}"] = topic
    env.update(extra)
    return env


def calls_seen(path: Path) -> list[dict[str, Any]]:
    """What the upstream server ran, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def start_http(args: list[str], env: dict[str, str], port: int, path: str = "/mcp",
               timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Start a process serving streamable HTTP on ``port`` and wait until it answers."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - kept open in _LOGS for the child's lifetime; a file, not a pipe: a chatty process never blocks on a full pipe
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    _LOGS[proc.pid] = log
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(f"{args} exited {proc.returncode}: {log.read().decode()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1.0)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{args} did not listen on {port} within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    log = _LOGS.pop(proc.pid, None)
    if log is not None:
        log.close()



def text_of(result: Any) -> str:
    return " ".join(getattr(item, "text", "") for item in result.content)


def store_events(kafka: KafkaSettings, store: StoreSettings, client: Any, group: str, events: int) -> None:
    """Store the actions topic through the real sink (default rule pack inline), as `agentaudit consume` does."""
    migrate(store)
    settings = SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000, batch_timeout_ms=300,
                            idle_timeout_ms=1000)
    with Sink(kafka, store, settings, RuleEvaluator(load_rule_set(None))) as sink:
        drain(sink, events, timeout=90)


def stored(client: Any) -> list[SimpleNamespace]:
    fields = ("agent_id", "trace_id", "action_id", "parent_action_id", "depth", "kind", "name", "phase", "status",
              "input_digest", "output_digest", "latency_us", "attributes")
    rows = client.query(f"SELECT {', '.join(fields)} FROM actions FINAL ORDER BY event_time").rows
    return [SimpleNamespace(**dict(zip(fields, row, strict=False))) for row in rows]
