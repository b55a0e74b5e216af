"""The whole loop with real processes: a rule promoted to enforce with the CLI, `agentaudit consume`
judging an SDK agent's events, the agent paused through the control topic, a human clear resuming it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.producers import ActionBlocked, AuditClient
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.control_support import write_rules

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.slow]

RULES = """\
required_engine_version: 1
rules:
  - id: e2e.drop-table
    desc: Dropping tables stops the agent once this rule is enforced.
    condition: kind = execute_tool and phase = start and name = "db.drop_table"
    output: "{agent_id} tried {name}"
    severity: critical
    tags: [incubating, security]
"""


def test_promoted_rule_pauses_an_sdk_agent_through_the_consume_process(
        kafka_settings_factory: Callable[..., KafkaSettings], store_settings_factory: Callable[[], StoreSettings],
        group_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = kafka_settings_factory(partitions=2)
    store_settings = store_settings_factory()
    migrate(store_settings)
    rules = write_rules(tmp_path, RULES)
    env = {"AGENTAUDIT_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "AGENTAUDIT_CLICKHOUSE_URL": store_settings.clickhouse_url, "AGENTAUDIT_DATABASE": store_settings.database,
           "AGENTAUDIT_SINK_SESSION_TIMEOUT_MS": "6000", "AGENTAUDIT_SINK_HEARTBEAT_INTERVAL_MS": "1000",
           "AGENTAUDIT_SINK_BATCH_TIMEOUT_MS": "100", "COLUMNS": "400"}
    env.update({f"AGENTAUDIT_TOPIC_{k.upper()}": v for k, v in kafka.topics.model_dump().items()})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    promoted = runner.invoke(app, ["rules", "promote", "e2e.drop-table", "--to", "enforce", "--actor", "carol",
                                   "--rules", str(rules)], catch_exceptions=False)
    assert promoted.exit_code == 0 and "detect -> enforce by carol" in promoted.output

    process = subprocess.Popen([sys.executable, "-m", "agentaudit.cli", "consume", "--group", group_factory(),
                                "--rules", str(rules)], env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        with AuditClient(kafka=kafka, tenant="acme", agent="bot-9", spool_dir=tmp_path / "spool",
                         control=True) as audit:
            with audit.action("execute_tool", name="db.drop_table", input={"table": "users"}):
                pass  # the consumer judges it after the fact; enforcement stops what comes next
            started = time.monotonic()
            blocked: ActionBlocked | None = None
            while blocked is None and time.monotonic() - started < 60:
                try:
                    with audit.action("chat", name="gpt-4o"):
                        pass
                    time.sleep(0.05)
                except ActionBlocked as exc:
                    blocked = exc
            assert blocked is not None, "the agent was not paused within 60 s"
            print(f"\nconsume process: promoted rule fired and paused the SDK agent after "
                  f"{time.monotonic() - started:.2f} s (includes the consumer's start-up and group join)")
            assert blocked.code == "paused" and blocked.rule_id == "e2e.drop-table" and blocked.incident_id

            listed = runner.invoke(app, ["control", "list"], catch_exceptions=False).output
            assert blocked.command_id in listed and "system:agentaudit-rules" in listed
            cleared = runner.invoke(app, ["control", "clear", "--command", blocked.command_id, "--actor", "dave",
                                          "--note", "table restored"], catch_exceptions=False)
            assert cleared.exit_code == 0, cleared.output
            deadline = time.monotonic() + 10
            while True:
                try:
                    with audit.action("chat", name="gpt-4o"):
                        break
                except ActionBlocked:
                    assert time.monotonic() < deadline, "not resumed 10 s after the clear"
                    time.sleep(0.02)
        with connect(store_settings) as store:
            deadline = time.monotonic() + 30
            rows: list = []
            while not rows and time.monotonic() < deadline:
                rows = store.query("SELECT mode, attributes FROM incidents FINAL WHERE incident_id = "
                                   f"'{blocked.incident_id}'").rows
                time.sleep(0.2)
        assert rows and rows[0][0] == "enforce" and rows[0][1]["control_command_id"] == blocked.command_id
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output[-3000:]
    assert "control.published" in output
