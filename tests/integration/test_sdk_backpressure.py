"""A fast agent on the real broker: 200,000 actions (400,000 events with a few hundred bytes of
attributes) emitted as fast as one thread can, with the default policy and with ``block``. Every event arrives
exactly once, in stream order, and ``flush()`` returns soon after the last confirmation. The same load through
a 20 s broker stall is in ``test_sdk_backpressure_stall.py``, through a SIGKILL of the agent mid-spool in
``test_sdk_backpressure_kill.py`` (helpers in ``tests/sdk_load.py``). Each test prints its figures and how long
it took; ``AGENTAUDIT_SDK_LOAD_ACTIONS`` scales the run (default 200000; 50000 on the Apache Kafka tier)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.producers import AuditClient
from agentaudit.settings import KafkaSettings
from tests.sdk_load import (
    ACTIONS,
    FLUSH_AFTER_LAST_CONFIRMATION_S,
    assert_every_event_once_in_order,
    flush_timed,
    read_topic,
    run_agent,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.broker
@pytest.mark.parametrize("policy", ["spool", "block"])
def test_a_full_speed_agent_delivers_every_event_once_in_order(
        policy: str, kafka_settings_factory: Callable[..., KafkaSettings], tmp_path: Path) -> None:
    started = time.monotonic()
    kafka = kafka_settings_factory(partitions=3)
    topic, total = kafka.topics.actions, 2 * ACTIONS
    audit = AuditClient(kafka=kafka, tenant="acme", agent="fast-agent", spool_dir=tmp_path / "spool",
                        **({} if policy == "spool" else {"full_policy": policy}))
    try:
        emit_s = run_agent(audit, ACTIONS)
        flushed, flush_s, after_confirmation = flush_timed(audit, total, 120)
        stats = audit.stats()
    finally:
        audit.close()
    streams = read_topic(kafka, topic, total)
    print(f"\n[sdk full speed, {policy}] {total} events emitted in {emit_s:.1f}s ({total / emit_s:,.0f}/s); "
          f"flush {flushed} after {flush_s:.1f}s, {after_confirmation:.2f}s after the last confirmation; "
          f"in topic {sum(len(s) for s in streams.values())}; spooled {stats['spooled']} dropped "
          f"{stats['dropped_queue_full'] + stats['dropped_spool_full']} blocked emits {stats['blocked_emits']}; "
          f"test took {time.monotonic() - started:.0f}s")
    assert flushed, stats
    assert stats["dropped_queue_full"] == stats["dropped_spool_full"] == 0
    assert_every_event_once_in_order(streams, total)
    assert after_confirmation <= FLUSH_AFTER_LAST_CONFIRMATION_S

