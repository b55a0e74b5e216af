"""Backfill end to end (real tansu broker, real sink, real chDB store): ``agentaudit import`` of transcript
and OTLP JSON files gives the same incidents as sending the same runs live through the SDK with their
original times, judged inline as `consume` judges them and by replay from the store. Ids that embed random values
(event ids, the SDK's action ids) are compared through what
they name: a trace by its run, an event by its kind, name, phase and time."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.replay import diff_incidents, replay_range
from agentaudit.consumers.settings import SinkSettings
from agentaudit.consumers.sink import Sink
from agentaudit.infra.clickhouse import connect
from agentaudit.producers import AuditClient
from agentaudit.producers.otel import AuditSpanProcessor
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.import_support import MINUTE_US, otel_runs, otlp_json, send_transcript_live, transcript_runs
from tests.sink_support import drain

pytestmark = [pytest.mark.integration, pytest.mark.broker]

HOUR_US = 60 * MINUTE_US
RUNS = 12  # transcripts: 3 with a forbidden tool, 3 with an unapproved refund
OTEL_RUNS = 8


def _stored_incidents(client: Any) -> list[SimpleNamespace]:
    rows = client.query("SELECT rule_id, tenant, severity, trace_id, agent_id, count, key, summary, "
                        "toUnixTimestamp64Micro(window_start), toUnixTimestamp64Micro(window_end), "
                        "toUnixTimestamp64Micro(first_seen), toUnixTimestamp64Micro(last_seen), event_ids "
                        "FROM incidents FINAL").rows
    fields = ("rule_id", "tenant", "severity", "trace_id", "agent_id", "count", "key", "summary", "window_start_us",
              "window_end_us", "first_seen_us", "last_seen_us", "event_ids")
    return [SimpleNamespace(**dict(zip(fields, row, strict=False))) for row in rows]


def _store(kafka: KafkaSettings, store: StoreSettings, client: Any, group: str,
           events: int) -> tuple[list[SimpleNamespace], list[Any]]:
    """Store and judge the topic through the real sink with the default pack inline (as `consume` does), and
    judge the stored range again by replay: ``(inline incidents, replayed incidents)``."""
    migrate(store)
    settings = SinkSettings(group=group, session_timeout_ms=6000, heartbeat_interval_ms=1000, batch_timeout_ms=300,
                            idle_timeout_ms=1000)
    replayed: list[Any] = []
    with Sink(kafka, store, settings, RuleEvaluator(load_rule_set(None))) as sink:
        drain(sink, events, timeout=90)
        replayed = replay_range(client, None)
        expected = sum(1 for i in replayed if not i.rule_id.startswith("integrity."))
        deadline = time.monotonic() + 60  # decisions close within lateness + idle timeout of the last event
        while len(_stored_incidents(client)) < expected and time.monotonic() < deadline:
            sink.run_once()
    return _stored_incidents(client), replayed


def _normalized(store: StoreSettings, incidents: list[Any]) -> list[tuple[Any, ...]]:
    with connect(store) as client:
        rows = client.query("SELECT event_id, trace_id, run_id, kind, name, phase, "
                            "toUnixTimestamp64Micro(event_time) FROM actions FINAL").rows
        streams = client.query("SELECT DISTINCT stream_id, agent_id FROM actions FINAL").rows
    label = {trace: run if run.startswith("run-") else trace for _, trace, run, kind, _, phase, _ in rows
             if kind == "invoke_agent" and phase == "start"}
    label.update({stream: f"<stream of {agent}>" for stream, agent in streams})  # client instance ids are random
    events = {eid: (label[trace], kind, name, phase, at) for eid, trace, _, kind, name, phase, at in rows}

    def named(text: str) -> str:
        return re.sub("|".join(map(re.escape, label)), lambda m: label[m.group(0)], text) if label else text

    return sorted((i.rule_id, i.tenant, i.severity, label.get(i.trace_id, i.trace_id), i.agent_id, i.count,
                   named(i.key), named(i.summary), i.window_start_us, i.window_end_us, i.first_seen_us,
                   i.last_seen_us, tuple(sorted(events[e] for e in i.event_ids))) for i in incidents)


def test_imported_runs_raise_the_incidents_the_same_runs_raise_live(
        kafka_settings_factory: Callable[..., KafkaSettings], store_settings_factory: Callable[[], StoreSettings],
        store_factory: Callable[..., Any], group_factory: Callable[..., str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTAUDIT_DIGEST_KEY", "the tenant's digest key, shared by the agent and the importer")
    base = (time.time_ns() // 1000 // MINUTE_US) * MINUTE_US - 3 * HOUR_US  # inside the store's retention
    runs = transcript_runs(base, runs=RUNS)

    # live: the agent sends its runs through the SDK as they happen, with their original times
    live_kafka = kafka_settings_factory(partitions=1)
    audit = AuditClient(kafka=live_kafka, tenant="acme", agent="fallback-agent", spool_dir=tmp_path / "live")
    for run in runs:
        send_transcript_live(audit, run)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(AuditSpanProcessor(audit))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    otel_runs(provider, base + HOUR_US, runs=OTEL_RUNS)
    provider.shutdown()
    assert audit.flush(60), audit.stats()
    audit.close()
    live_events = audit.stats()["delivered"]

    # backfill: the same runs from the files a recorder left, through `agentaudit import`
    transcripts = tmp_path / "runs.jsonl"
    transcripts.write_text("".join(json.dumps(r) + "\n" for r in runs))
    traces = tmp_path / "traces.json"
    traces.write_text(otlp_json(memory.get_finished_spans()))
    import_kafka = kafka_settings_factory(partitions=1)
    env = {"AGENTAUDIT_BOOTSTRAP_SERVERS": import_kafka.bootstrap_servers,
           "AGENTAUDIT_TOPIC_ACTIONS": import_kafka.topics.actions, "AGENTAUDIT_SPOOL_DIR": str(tmp_path / "import")}
    imported_events = 0
    for command in (["transcripts", str(transcripts)], ["otlp", str(traces), "--agent", "fallback-agent"]):
        result = CliRunner().invoke(app, ["import", *command, "--tenant", "acme"], env=env)
        assert result.exit_code == 0, result.output
        found = re.search(r"imported (\d+) run\(s\), (\d+) event\(s\) from 1 file\(s\); rejected 0", result.output)
        assert found, result.output
        imported_events += int(found.group(2))
        print(f"\n[import {command[0]}] {result.output.strip()}")
    assert imported_events == live_events

    live_store, import_store = store_settings_factory(), store_settings_factory()
    live_inline, live = _store(live_kafka, live_store, store_factory(live_store), group_factory(), live_events)
    imported_inline, imported = _store(import_kafka, import_store, store_factory(import_store), group_factory(),
                                       imported_events)
    # judged inline as they arrive (consume), the imported runs raise the incidents the live runs raised
    assert live_inline and _normalized(import_store, imported_inline) == _normalized(live_store, live_inline)
    assert not [i for i in imported_inline if i.rule_id.startswith("integrity.")]  # streams intact in arrival order
    want, got = _normalized(live_store, live), _normalized(import_store, imported)
    rules = sorted({i.rule_id for i in imported})
    print(f"[backfill] {live_events} events each way; inline: live {len(live_inline)} incidents, imported "
          f"{len(imported_inline)}; replay: live {len(live)}, imported {len(imported)}; rules {rules}")
    assert got == want
    counts = {rule: sum(i.count for i in imported if i.rule_id == rule)
              for rule in ("security.forbidden-tool", "security.unapproved-consequential-action")}
    assert counts == dict.fromkeys(counts, RUNS // 4 + OTEL_RUNS // 4)  # one per such run
    # replay from the store hands each stream back in seq order, as the live log had it: no integrity incident
    # (an OTel span's start is emitted at its end, so event-time order alone broke every OTel stream's chain),
    # and replay decides what inline judging decided
    assert not [i for i in live + imported if i.rule_id.startswith("integrity.")]
    assert _normalized(live_store, live) == _normalized(live_store, live_inline)
    # `rules diff` of the live and imported OTel runs (whose trace ids are the recorded ones) finds nothing;
    # integrity incidents are keyed by the producer's stream (a random client instance id), transcript runs by
    # the SDK's random root id: those are compared above, through what they name
    def otel(incidents: list[Any]) -> list[Any]:
        return [i for i in incidents if re.fullmatch("[0-9a-f]{32}", i.trace_id) and not i.rule_id.startswith(
            "integrity.")]

    assert otel(imported) and diff_incidents(otel(live), otel(imported)) == ([], [])
