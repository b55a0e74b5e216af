"""The example agent loop runs against a real broker and records one valid causal trace per ticket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.infra.kafka import read_all
from agentaudit.producers.examples import support_agent
from agentaudit.schemas import AvroCodec, body_hash, frame_body, verify_streams
from agentaudit.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def test_the_support_agent_example_records_valid_linked_traces(
        kafka_settings: KafkaSettings, topic_factory: Callable[..., str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AGENTAUDIT_SPOOL_DIR", str(tmp_path))
    topic = topic_factory()
    support_agent.main(["--bootstrap", kafka_settings.bootstrap_servers, "--topic", topic, "--tickets", "2",
                        "--seed", "1"])
    assert "delivered=True" in capsys.readouterr().out
    codec = AvroCodec("action")
    events = [(codec.decode(m.value()), body_hash(frame_body(m.value())))
              for m in read_all(kafka_settings, topic, timeout=20, idle=2.0)]
    assert events and verify_streams(events) == []
    records = [r for r, _ in events]
    roots = {r["action_id"] for r in records if r["kind"] == "invoke_agent"}
    assert len(roots) == 2 and {r["trace_id"] for r in records} == roots  # one trace per ticket
    ids = {r["action_id"] for r in records}
    assert all(r["parent_action_id"] in ids for r in records if r["parent_action_id"])  # no dangling parents
    tools = [r for r in records if r["name"] in ("crm.lookup", "orders.get") and r["phase"] == "start"]
    assert len(tools) == 4 and all(r["depth"] == 1 for r in tools)  # pool threads kept their parent
