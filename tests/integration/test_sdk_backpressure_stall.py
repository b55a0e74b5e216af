"""The SDK load test's 200,000 actions at full speed through a 20 s broker stall (SIGSTOP/SIGCONT of a
dedicated tansu): nothing is lost and nothing is stored twice (``count() FINAL = count(DISTINCT event_id)``)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentaudit.infra.kafka import KafkaAdmin
from agentaudit.producers import AuditClient
from agentaudit.settings import KafkaSettings, StoreSettings, TopicNames
from tests.sdk_load import (
    ACTIONS,
    FLUSH_AFTER_LAST_CONFIRMATION_S,
    STALL_S,
    flush_timed,
    run_agent,
    stored_once_by_a_consumer,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.fault
def test_a_20s_broker_stall_under_full_speed_loses_nothing_and_stores_nothing_twice(
        embedded_broker_factory: Callable[..., Any], store_settings_factory: Callable[[], StoreSettings],
        group_factory: Callable[..., str], tmp_path: Path) -> None:
    started = time.monotonic()
    broker = embedded_broker_factory()  # its own tansu: the session's broker is never paused
    prefix = f"stall-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap,
                          topics=TopicNames(**{n: f"{prefix}.{n}" for n in TopicNames.model_fields}))
    KafkaAdmin(kafka).ensure_topics(kafka.topics.model_dump().values(), partitions=3)
    store_settings = store_settings_factory()
    total = 2 * ACTIONS
    audit = AuditClient(kafka=kafka, tenant="acme", agent="stalled-agent", spool_dir=tmp_path / "spool")
    progress = [0]
    stall_window: list[int] = []

    def stall() -> None:
        while progress[0] < ACTIONS // 4:
            time.sleep(0.01)
        stall_window.append(progress[0])
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            time.sleep(STALL_S)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        stall_window.append(progress[0])

    staller = threading.Thread(target=stall, name="stall")
    staller.start()
    try:
        emit_s = run_agent(audit, ACTIONS, progress)
        staller.join()
        flushed, flush_s, after_confirmation = flush_timed(audit, total, 180)
        stats = audit.stats()
    finally:
        staller.join()
        audit.close()
    final, distinct, raw = stored_once_by_a_consumer(kafka, store_settings, group_factory(), tmp_path / "consume.log",
                                                     total)
    print(f"\n[sdk stall] broker SIGSTOPped {STALL_S:.0f}s between actions {stall_window[0]} and "
          f"{stall_window[-1]}; {total} events emitted in {emit_s:.1f}s; flush {flushed} after {flush_s:.1f}s, "
          f"{after_confirmation:.2f}s after the last confirmation; stored count() FINAL {final}, distinct "
          f"{distinct}, raw {raw}; spooled {stats['spooled']} dropped "
          f"{stats['dropped_queue_full'] + stats['dropped_spool_full']}; test took {time.monotonic() - started:.0f}s")
    assert flushed and stats["dropped_queue_full"] == stats["dropped_spool_full"] == 0, stats
    assert after_confirmation <= FLUSH_AFTER_LAST_CONFIRMATION_S

