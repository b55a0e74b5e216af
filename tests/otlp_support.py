"""The OTLP receiver's tests: an agent run of GenAI spans sent by a real exporter (Python's
opentelemetry-exporter-otlp-proto-http, or the Node script in tests/otlp_node), a receiver with two tenants'
tokens, and storing and judging what arrived through the real sink and store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.producers.otlp_receiver import OtlpReceiver, OtlpSettings
from agentaudit.producers.settings import SdkSettings
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.sink_support import drain

TOKENS = {"acme": "acme-token-0123456789abcdef", "globex": "globex-token-fedcba9876543210"}
SECRET = "sk-abcdefghijklmnopqrstuv"
NODE_DIR = Path(__file__).parent / "otlp_node"
NODE_CACHE = Path(__file__).resolve().parents[1] / ".ci" / "cache" / "otlp-node"
RUN_EVENTS = 8  # invoke_agent, chat, two tools: start and end each; the non-GenAI span is not recorded


def receiver(tmp_path: Path, kafka: KafkaSettings, **settings: Any) -> OtlpReceiver:
    """A started receiver on a free loopback port with the two tenants' tokens in a tokens file."""
    tokens = tmp_path / "otlp-tokens.yaml"
    tokens.write_text("".join(f"{tenant}: [{token}]\n" for tenant, token in TOKENS.items()))
    tokens.chmod(0o600)
    fields: dict[str, Any] = {"port": 0, "tokens_file": tokens, **settings}
    sdk = SdkSettings(spool_dir=tmp_path / "spool", **fields.pop("sdk", {}))
    return OtlpReceiver(OtlpSettings(**fields), kafka=kafka, sdk=sdk).start()


def send_python_run(url: str, token: str) -> str:
    """The agent run through the stock Python SDK and OTLP/HTTP protobuf exporter (gzip); its trace id."""
    exporter = OTLPSpanExporter(endpoint=url, headers={"authorization": f"Bearer {token}"},
                                compression=Compression.Gzip)
    provider = TracerProvider(resource=Resource.create({"service.name": "travel-bot", "agentaudit.tenant": "globex",
                                                        "tenant": "globex"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("python-agent")
    with tracer.start_as_current_span("invoke_agent travel-bot", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "travel-bot"}) as root:
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 812,
                "gen_ai.usage.output_tokens": 95, "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                    {"type": "text", "content": f"my key is {SECRET}, book me a flight"}]}])}):
            with tracer.start_as_current_span("execute_tool orders.get", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "orders.get"}):
                pass
            with tracer.start_as_current_span("execute_tool shell.exec", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "shell.exec",
                    "gen_ai.tool.call.arguments": json.dumps({"cmd": "cat /etc/passwd"})}):
                pass
        with tracer.start_as_current_span("GET /status"):  # not a GenAI span
            pass
    trace_id = f"{root.get_span_context().trace_id:032x}"
    assert provider.force_flush(30_000)
    provider.shutdown()
    return trace_id


def node_modules() -> Path | None:
    """``node_modules`` with the stock Node OTel SDK and exporter, installed from npm into .ci/cache once;
    None when node or npm is missing or the registry cannot be reached (the test then skips, saying so)."""
    installed = NODE_CACHE / "node_modules" / "@opentelemetry" / "exporter-trace-otlp-http"
    if not installed.exists():
        if not shutil.which("node") or not shutil.which("npm"):
            return None
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copy(NODE_DIR / "package.json", NODE_CACHE / "package.json")
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_CACHE,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not installed.exists():
            return None
    return NODE_CACHE / "node_modules"


def send_node_run(url: str, token: str, modules: Path) -> str:
    done = subprocess.run(["node", str(NODE_DIR / "send_agent_run.cjs")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NODE_PATH": str(modules), "OTLP_URL": url, "OTLP_TOKEN": token})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def store_and_judge(kafka: KafkaSettings, store: StoreSettings, client: Any, group: str, events: int) -> None:
    """Store the topic through the real sink with the default rule pack judged inline (as ``consume``)."""
    migrate(store)
    settings = SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000, batch_timeout_ms=300,
                            idle_timeout_ms=1000)
    with Sink(kafka, store, settings, RuleEvaluator(load_rule_set(None))) as sink:
        drain(sink, events, timeout=90)
        deadline = time.monotonic() + 60
        while not incidents(client) and time.monotonic() < deadline:
            sink.run_once()


def actions(client: Any) -> list[SimpleNamespace]:
    fields = ("tenant", "agent_id", "trace_id", "action_id", "parent_action_id", "depth", "kind", "name", "phase",
              "model", "input_tokens", "input_digest", "attributes")
    rows = client.query(f"SELECT {', '.join(fields)} FROM actions FINAL ORDER BY event_time").rows
    return [SimpleNamespace(**dict(zip(fields, row, strict=False))) for row in rows]


def incidents(client: Any) -> list[SimpleNamespace]:
    rows = client.query("SELECT rule_id, tenant, agent_id, trace_id FROM incidents FINAL").rows
    return [SimpleNamespace(rule_id=r[0], tenant=r[1], agent_id=r[2], trace_id=r[3]) for r in rows]


def assert_run_stored(client: Any, trace_id: str, tenant: str) -> None:
    """The run's actions carry the span tree as the causal tree, its tenant is the token's, its content is
    digested (no prompt or tool argument in clear), and the forbidden tool raised its incident."""
    stored = [a for a in actions(client) if a.phase == "end"]
    by_name = {a.name: a for a in stored}
    assert {a.trace_id for a in stored} == {trace_id}, stored
    assert {a.tenant for a in stored} == {tenant}  # the resource's agentaudit.tenant=globex was not obeyed
    assert {a.agent_id for a in stored} == {"travel-bot"}
    assert sorted((a.kind, a.name) for a in stored) == [("chat", "gpt-4o"), ("execute_tool", "orders.get"),
                                                       ("execute_tool", "shell.exec"), ("invoke_agent", "travel-bot")]
    root, chat, tool = by_name["travel-bot"], by_name["gpt-4o"], by_name["shell.exec"]
    assert (root.parent_action_id, root.depth) == ("", 0)
    assert (chat.parent_action_id, chat.depth) == (root.action_id, 1)
    assert (tool.parent_action_id, tool.depth) == (chat.action_id, 2)
    assert by_name["orders.get"].parent_action_id == chat.action_id
    assert root.action_id.startswith(trace_id + "-")
    assert (chat.model, chat.input_tokens) == ("gpt-4o", 812)
    assert chat.input_digest and tool.input_digest and chat.input_digest != tool.input_digest
    every_value = json.dumps([a.attributes for a in actions(client)])
    assert SECRET not in every_value and "/etc/passwd" not in every_value
    assert "gen_ai.input.messages" not in every_value
    found = [i for i in incidents(client) if i.rule_id == "security.forbidden-tool"]
    assert [(i.tenant, i.agent_id, i.trace_id) for i in found] == [(tenant, "travel-bot", trace_id)], incidents(client)
