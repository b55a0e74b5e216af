"""Store outage, process level: the ``agentaudit store`` process is stopped for ``OUTAGE_S``
seconds (default 30) while ``agentaudit consume`` runs and events keep arriving, then
restarted on the same port and data directory. The consumer stays alive, commits nothing
while the store is away, backs off (retries counted on its /metrics), resumes and loses
nothing. (tests/integration/test_sink_faults.py covers the same with an in-process Sink; this
is the CLI and process version.)"""

from __future__ import annotations

import os
import re
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.infra.embedded import ManagedProcess, free_port
from agentaudit.infra.kafka import KafkaAdmin
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.fault.support import ConsumerProcess, count_final, duplicated_events, produce_all, stack_env, wait_until
from tests.sink_support import framed_events

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

OUTAGE_S = float(os.environ.get("AGENTAUDIT_FAULT_OUTAGE_S", "30"))


def scrape(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
        text = response.read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_store_down_for_30s_consumer_pauses_commits_nothing_resumes_loses_nothing(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory, tmp_path: Path,
):
    port, metrics_port = free_port(), free_port()
    server = ManagedProcess("store", [sys.executable, "-m", "agentaudit.infra.store", "--data-dir",
                                      str(tmp_path / "data"), "--port", str(port)],
                            log_path=tmp_path / "store.log", ready_port=port)
    server.start()
    kafka = kafka_settings_factory(partitions=3)
    store_settings = StoreSettings(clickhouse_url=f"http://127.0.0.1:{port}", database="outage")
    with connect(store_settings.model_copy(update={"database": "default"})) as admin:
        admin.command("CREATE DATABASE outage")
    migrate(store_settings)
    group = group_factory()
    consumer = ConsumerProcess(
        stack_env(kafka, store_settings, AGENTAUDIT_SINK_RETRY_INITIAL_S="0.5", AGENTAUDIT_SINK_RETRY_MAX_S="4"),
        ["--group", group, "--builtin-rules", "--metrics-port", str(metrics_port)], tmp_path / "consume.log")
    admin_kafka = KafkaAdmin(kafka)

    def committed() -> int:
        return sum(o or 0 for o in admin_kafka.committed_offsets(group, [kafka.topics.actions]).values())

    def send(stream: str, n: int) -> int:
        return produce_all(kafka, kafka.topics.actions,
                           [(r["stream_id"].encode(), data) for r, data in framed_events(n, stream_id=stream)])

    total = 0
    commits_during: set[int] = set()
    try:
        consumer.start()
        total += send("before", 1000)
        with connect(store_settings) as store:
            wait_until(lambda: count_final(store) >= total and committed() >= total, 60, "first wave stored",
                       alive=[consumer])
        before = committed()
        retries_before = scrape(metrics_port, "agentaudit_sink_retries_total")
        server.stop()
        down = time.monotonic()
        waves = 0
        while time.monotonic() - down < OUTAGE_S:
            total += send(f"during-{waves}", 100)  # events keep arriving while the store is away
            waves += 1
            commits_during.add(committed())
            assert consumer.alive, consumer.log()[-3000:]
            time.sleep(2)
        retries_during = scrape(metrics_port, "agentaudit_sink_retries_total") - retries_before
        server.start()
        up = time.monotonic()
        with connect(store_settings) as store:
            wait_until(lambda: count_final(store) >= total and committed() >= total, 90, "everything stored",
                       alive=[consumer])
            resumed_in = time.monotonic() - up
            time.sleep(1)
            stored, dupes = count_final(store), duplicated_events(store)
    finally:
        code = consumer.stop()
        server.stop()
    print(f"\n[store outage] injected: store process stopped {OUTAGE_S:.0f}s (same port and data dir on restart); "
          f"{total - 1000} events produced during the outage")
    print(f"[store outage] counted: committed offsets during outage {sorted(commits_during)} (before {before}), "
          f"retries during outage {retries_during:.0f}, caught up {resumed_in:.1f}s after restart, stored FINAL "
          f"{stored}/{total}, duplicated {dupes}, consumer exit {code}")
    assert code == 0, consumer.log()[-3000:]
    assert commits_during == {before}  # paused without committing
    assert 2 <= retries_during <= OUTAGE_S / 0.5  # backed off: retried, but not in a hot loop
    assert stored == total and dupes == 0
