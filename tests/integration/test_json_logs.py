"""``AGENTAUDIT_LOG_FORMAT=json`` on a real long-running command: every stderr line is one JSON object with
real fields (event, level, logger, timestamp and the call's own keys), the libraries' lines included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.infra.kafka import KafkaProducer
from agentaudit.settings import KafkaSettings
from tests.fixtures.broker import test_consumer_config
from tests.notify_support import INCIDENT_CODEC, Receiver, incident_record, owners_file

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def test_notify_writes_one_json_object_per_stderr_line(kafka_settings_factory: Callable[..., KafkaSettings],
                                                       group_factory, tmp_path: Path) -> None:
    kafka = kafka_settings_factory(partitions=1)
    receiver = Receiver().start()
    owners = owners_file(tmp_path / "owners.yaml", [{"kind": "slack", "url": receiver.url}])
    env = {**os.environ, "AGENTAUDIT_LOG_FORMAT": "json", "AGENTAUDIT_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           **{f"AGENTAUDIT_TOPIC_{name.upper()}": topic for name, topic in kafka.topics.model_dump().items()},
           "AGENTAUDIT_NOTIFY_GROUP": group_factory(), "AGENTAUDIT_NOTIFY_STATE_DIR": str(tmp_path / "state"),
           "AGENTAUDIT_NOTIFY_CONSUMER_CONFIG": json.dumps(test_consumer_config())}
    for name in ("AGENTAUDIT_AUTHORITY_FILE", "AGENTAUDIT_SERVICE_KEY_FILE"):
        env.pop(name, None)
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "agentaudit.cli", "notify", "--owners", str(owners)],
                                   env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            with KafkaProducer(kafka) as producer:
                producer.produce(kafka.topics.incidents, INCIDENT_CODEC.encode(incident_record()))
            receiver.wait_for(1, timeout=30)
            deadline = time.monotonic() + 10
            while "notify.delivered" not in stderr.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(20)
            receiver.stop()
    lines = [line for line in stderr.read_text().splitlines() if line.strip()]
    assert len(lines) >= 2
    records = []
    for line in lines:
        record = json.loads(line)  # every line, ours and the libraries', is JSON
        assert {"event", "level", "logger", "timestamp"} <= set(record), record
        assert record["timestamp"].endswith("Z") and record["level"] in {"debug", "info", "warning", "error"}
        records.append(record)
    by_event = {r["event"]: r for r in records}
    started = by_event["notify.started"]
    assert started["logger"] == "agentaudit.consumers.notify" and started["routes"] == 1
    assert started["state"].startswith(str(tmp_path / "state")) and started["group"] == env["AGENTAUDIT_NOTIFY_GROUP"]
    delivered = by_event["notify.delivered"]
    assert delivered["status"] == 200 and delivered["attempts"] == 1 and isinstance(delivered["route"], str)
    assert "=" not in delivered["event"]  # the fields are keys, not text in the message
