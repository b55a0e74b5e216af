"""The pipeline's own metrics, scraped over HTTP after known traffic: the consumer's /metrics
(events in/out, dead letters by reason, incidents, batch sizes, rule time, commits, lag) and
the store server's /metrics (inserted rows, requests). The consumer logs JSON lines here, checked too."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.embedded import free_port
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.fault.support import ConsumerProcess, count_final, produce_all, stack_env, wait_until
from tests.sink_support import framed_events

pytestmark = [pytest.mark.integration, pytest.mark.broker]

GOOD, FORBIDDEN, BAD = 500, 7, 13


def scrape(url: str) -> dict[str, float]:
    """``name{labels}`` -> value of every sample on a Prometheus text page."""
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            samples[match.group(1)] = float(match.group(2))
    return samples


def total(samples: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in samples.items() if k == prefix or k.startswith(prefix + "{"))


def test_consumer_and_store_metrics_count_the_real_traffic(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory,
    store_settings_factory: Callable[[], StoreSettings], store_server, tmp_path: Path,
):
    kafka = kafka_settings_factory(partitions=3)
    store_settings = store_settings_factory()
    migrate(store_settings)
    events = [(r["stream_id"].encode(), d) for s in range(5) for r, d in framed_events(GOOD // 5, stream_id=f"m{s}")]
    events += [(r["stream_id"].encode(), d) for r, d in framed_events(FORBIDDEN, stream_id="bad-tool", name="rm")]
    events += [(b"junk", b"junk-%d" % i) for i in range(BAD)]
    port = free_port()
    store_before = scrape(f"{store_server.url}/metrics")
    produce_all(kafka, kafka.topics.actions, events)
    consumer = ConsumerProcess(stack_env(kafka, store_settings, AGENTAUDIT_SINK_FORBIDDEN_TOOLS="rm",
                                         AGENTAUDIT_LOG_FORMAT="json"),
                               ["--group", group_factory(), "--builtin-rules", "--batch-size", "100",
                                "--metrics-port", str(port)], tmp_path / "consume.log")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        consumer.start()
        with connect(store_settings) as store:
            wait_until(lambda: count_final(store) >= GOOD + FORBIDDEN, 60, "events stored", alive=[consumer])

        def settled() -> dict[str, float] | None:
            try:
                s = scrape(url)
            except OSError:
                return None
            return s if total(s, "agentaudit_sink_committed_offset") >= len(events) else None
        metrics = wait_until(settled, 30, "every offset committed", alive=[consumer])
        time.sleep(0.5)
        store_after = scrape(f"{store_server.url}/metrics")
    finally:
        consumer.stop()
    with connect(store_settings) as store:  # the sink's signed digests: one row per partition range it stored
        digest_rows = int(store.query("SELECT count() FROM action_digests").rows[0][0])
    inserted = store_after["agentaudit_store_inserted_rows_total"] - store_before.get(
        "agentaudit_store_inserted_rows_total", 0)
    inserts = (store_after.get('agentaudit_store_requests_total{kind="insert"}', 0)
               - store_before.get('agentaudit_store_requests_total{kind="insert"}', 0))
    print(f"\n[metrics] sent {GOOD} good + {FORBIDDEN} forbidden-tool + {BAD} junk; consumer: in "
          f"{metrics['agentaudit_sink_events_in_total']:.0f}, out {metrics['agentaudit_sink_events_out_total']:.0f}, "
          f"dlq {total(metrics, 'agentaudit_sink_dlq_total'):.0f}, incidents "
          f"{total(metrics, 'agentaudit_sink_incidents_total'):.0f}, batches "
          f"{metrics['agentaudit_sink_batch_size_count']:.0f}, committed "
          f"{total(metrics, 'agentaudit_sink_committed_offset'):.0f}, lag {total(metrics, 'agentaudit_sink_lag'):.0f}; "
          f"store: rows inserted {inserted:.0f} in {inserts:.0f} inserts")
    assert metrics["agentaudit_sink_events_in_total"] == len(events)
    assert metrics["agentaudit_sink_events_out_total"] == GOOD + FORBIDDEN
    assert metrics['agentaudit_sink_dlq_total{reason="bad_magic"}'] == BAD
    assert metrics['agentaudit_sink_incidents_total{rule_id="builtin.forbidden_tool"}'] == FORBIDDEN
    assert metrics["agentaudit_sink_batch_size_sum"] == len(events)
    assert metrics["agentaudit_sink_latency_seconds_count"] == metrics["agentaudit_sink_batch_size_count"] >= 1
    assert metrics["agentaudit_sink_rule_eval_seconds_count"] >= 1
    assert total(metrics, "agentaudit_sink_committed_offset") == len(events)
    lags = {k: v for k, v in metrics.items() if k.startswith("agentaudit_sink_lag{")}
    assert lags and all(v == 0 for v in lags.values()), lags  # everything consumed is committed
    assert digest_rows >= 1
    assert inserted == GOOD + FORBIDDEN + FORBIDDEN + digest_rows  # action rows + one incident row each + digests
    assert inserts >= 2
    # structured logs: every log line is one JSON object (AGENTAUDIT_LOG_FORMAT=json)
    logged = [json.loads(line) for line in consumer.log().splitlines() if not line.startswith("---- start")]
    assert all({"event", "level", "logger", "timestamp"} <= set(r) for r in logged)
    assert any(r["event"] == "sink.start" and r["rules"] == "inline" for r in logged)
    assert sum(r["event"] == "sink.dead_letter" and r["reason"] == "bad_magic" for r in logged) == BAD
