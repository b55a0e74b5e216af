"""The SDK load test's 200,000 actions spooled while the broker is stopped, the agent SIGKILLed while it
replays its spool, and the next process on the same spool directory replaying the rest: every event is stored
once (``count() FINAL = count(DISTINCT event_id)``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentaudit.infra.kafka import KafkaAdmin
from agentaudit.producers import AuditClient
from agentaudit.settings import KafkaSettings, StoreSettings, TopicNames
from tests.sdk_load import ACTIONS, stored_once_by_a_consumer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


_KILLED_AGENT = textwrap.dedent("""
    import json, sys, time
    from agentaudit.producers import AuditClient
    from tests.sdk_load import run_agent
    bootstrap, topic, spool, actions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    audit = AuditClient(bootstrap, topic=topic, tenant="acme", agent="killed-agent", spool_dir=spool)
    audit.decision("start")
    assert audit.flush(60)
    print("ready", flush=True)
    sys.stdin.readline()  # the broker is stopped now: what follows piles up in the spool
    run_agent(audit, actions)
    while audit.stats()["sealed"] < 2 * actions + 1:
        time.sleep(0.02)
    print(json.dumps(audit.stats()), flush=True)
    durable = 0
    while True:  # the broker is back: report while the spool is replayed, once every event is on disk
        stats = audit.stats()  # (seen twice 20 ms apart: the spool's last batch was synced in between)
        durable = durable + 1 if stats["delivered"] + stats["spool_pending"] == stats["sealed"] else 0
        if durable >= 2:
            print(json.dumps(stats), flush=True)
        time.sleep(0.02)
""")


@pytest.mark.fault
def test_an_agent_killed_mid_spool_is_replayed_by_the_next_process_once(
        embedded_broker_factory: Callable[..., Any], store_settings_factory: Callable[[], StoreSettings],
        group_factory: Callable[..., str], tmp_path: Path) -> None:
    import json

    started = time.monotonic()
    broker = embedded_broker_factory()  # its own tansu: stopped while the agent spools
    prefix = f"kill-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap,
                          topics=TopicNames(**{n: f"{prefix}.{n}" for n in TopicNames.model_fields}))
    KafkaAdmin(kafka).ensure_topics(kafka.topics.model_dump().values(), partitions=3)
    store_settings = store_settings_factory()
    total = 2 * ACTIONS + 1
    spool = tmp_path / "spool"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_AGENT, kafka.bootstrap_servers, kafka.topics.actions,
                             str(spool), str(ACTIONS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    before: dict[str, Any] = {}
    try:
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            first = json.loads(proc.stdout.readline())  # everything emitted is sealed
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        assert first["sealed"] == total and first["spool_pending"] > 0, first
        for line in proc.stdout:  # replay under way: kill it in the middle
            before = json.loads(line)
            if before["replayed"] > 0 and before["spool_pending"] > 0:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
    assert before.get("replayed", 0) > 0 and before["spool_pending"] > 0, f"not killed mid-replay: {before}"

    replay_began = time.monotonic()
    with AuditClient(kafka=kafka, tenant="acme", agent="killed-agent", spool_dir=spool) as audit:
        adopted = audit.stats()["spool_pending"]
        flushed = audit.flush(180)
        stats = audit.stats()
    replay_s = time.monotonic() - replay_began
    final, distinct, raw = stored_once_by_a_consumer(kafka, store_settings, group_factory(), tmp_path / "consume.log",
                                                     total)
    print(f"\n[sdk kill] agent SIGKILLed while replaying its spool: {before['spool_pending']} of {total} events "
          f"still spooled (replayed {before['replayed']}); the next process adopted {adopted} and replayed them in "
          f"{replay_s:.1f}s (flush {flushed}); stored count() FINAL {final}, distinct {distinct}, raw {raw} "
          f"(raw - distinct: the window in flight at the kill, sent again); test took "
          f"{time.monotonic() - started:.0f}s")
    assert flushed, stats
    assert adopted > 0 and stats["replayed"] >= adopted

