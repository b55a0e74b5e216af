"""`agentaudit consume` as a process: stores events, serves metrics, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.embedded import free_port
from agentaudit.infra.kafka import KafkaAdmin, KafkaProducer
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.sink_support import framed_events

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def test_consume_cli_stores_serves_metrics_and_stops_on_sigterm(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory,
    store_settings_factory: Callable[[], StoreSettings],
):
    kafka = kafka_settings_factory(partitions=2)
    store_settings = store_settings_factory()
    migrate(store_settings)
    group, port = group_factory(), free_port()
    events = framed_events(200, stream_id="cli") + framed_events(3, stream_id="bad-tool", start=500, name="rm")
    with KafkaProducer(kafka) as producer:
        for record, data in events:
            producer.produce(kafka.topics.actions, data, key=record["stream_id"].encode())
        producer.produce(kafka.topics.actions, b"junk", key=b"junk")
    env = {**os.environ, "AGENTAUDIT_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "AGENTAUDIT_CLICKHOUSE_URL": store_settings.clickhouse_url, "AGENTAUDIT_DATABASE": store_settings.database,
           "AGENTAUDIT_SINK_SESSION_TIMEOUT_MS": "6000", "AGENTAUDIT_SINK_HEARTBEAT_INTERVAL_MS": "1000",
           "AGENTAUDIT_SINK_BATCH_TIMEOUT_MS": "300", "AGENTAUDIT_SINK_FORBIDDEN_TOOLS": "rm"}
    env.update({f"AGENTAUDIT_TOPIC_{k.upper()}": v for k, v in kafka.topics.model_dump().items()})
    process = subprocess.Popen(
        [sys.executable, "-m", "agentaudit.cli", "consume", "--group", group, "--batch-size", "50",
         "--metrics-port", str(port), "--builtin-rules"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 40
        metrics = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    metrics = response.read().decode()
            except OSError:
                metrics = ""
            # events_in moves when a batch is read, events_out after its insert: wait for both.
            if (f"agentaudit_sink_events_in_total {len(events) + 1}.0" in metrics
                    and f"agentaudit_sink_events_out_total {len(events)}.0" in metrics):
                break
            time.sleep(0.5)
        assert f"agentaudit_sink_events_out_total {len(events)}.0" in metrics, metrics[-3000:]
        assert 'agentaudit_sink_dlq_total{reason="bad_magic"} 1.0' in metrics
        assert 'agentaudit_sink_incidents_total{rule_id="builtin.forbidden_tool"} 3.0' in metrics
        assert "agentaudit_sink_batch_size_bucket" in metrics and "agentaudit_sink_committed_offset" in metrics
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output[-3000:]
    assert "sink.stop" in output
    committed = KafkaAdmin(kafka).committed_offsets(group, [kafka.topics.actions])
    assert sum(offset or 0 for offset in committed.values()) == len(events) + 1
    with connect(store_settings) as store:
        assert store.query("SELECT count() FROM actions FINAL").rows[0][0] == len(events)
        assert store.query("SELECT count() FROM incidents FINAL").rows[0][0] == 3


def test_consume_no_rules_refuses_inline_rule_options(tmp_path):
    from typer.testing import CliRunner

    from agentaudit.cli import app

    result = CliRunner().invoke(app, ["consume", "--no-rules", "--state-dir", str(tmp_path), "--builtin-rules"])
    assert result.exit_code == 2
    assert "--builtin-rules, --state-dir configure inline rules" in result.output
    assert "agentaudit rules run" in result.output
