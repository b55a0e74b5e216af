"""Consumer crashes: ``kill -9`` the ``agentaudit consume`` process 5 times at seeded random
points of a seeded simulator run and restart it each time; afterwards every event is stored
exactly once and every incident of the uninterrupted reference exists exactly once.

Scaled down from the issue's 200k events to ``CRASH_EVENTS`` (default 30 000): on 2 cores the
simulator makes ~9k events/s and the sink with the rule pack stores ~3k events/s, so 200k
alone would take the whole fault-suite budget (8 minutes). Set ``AGENTAUDIT_FAULT_CRASH_EVENTS``
to run the full size.

One partition: the reference is the in-process rule engine over the log in log order, and with
several partitions the sink's incidents already differ from it without any crash (the sink
judges each consumer's interleaving of partitions; see tests/fault/test_scale_out.py).

Events exactly once is asserted, and incidents equal to the reference: the consumer runs with
``--state-dir``, so rule state (open windows) is snapshotted with every batch together with the
offsets it has applied (consumers/rule_state.py), and a restarted consumer resumes those windows
and skips re-read records already applied. Without ``--state-dir`` it resumes with empty windows
and misses or under-counts aggregate incidents.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.infra.clickhouse import connect
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.fault.support import (
    ConsumerProcess,
    assert_incidents_equal,
    count_final,
    duplicated_events,
    published_backlog,
    stack_env,
    stored_incidents,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

CRASH_EVENTS = int(os.environ.get("AGENTAUDIT_FAULT_CRASH_EVENTS", "30000"))
KILLS = int(os.environ.get("AGENTAUDIT_FAULT_CRASH_KILLS", "5"))
SEED = 11


def test_kill9_five_times_every_event_and_incident_exactly_once(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory,
    store_settings_factory: Callable[[], StoreSettings], tmp_path: Path,
):
    began = time.monotonic()
    log, kafka, store_settings, reference = published_backlog(kafka_settings_factory, store_settings_factory,
                                                              seed=SEED, events=CRASH_EVENTS, partitions=1)
    rng = random.Random(SEED)
    consumer = ConsumerProcess(stack_env(kafka, store_settings), ["--group", group_factory(), "--batch-size", "1000",
                                                                   "--state-dir", str(tmp_path / "state")],
                               tmp_path / "consume.log")
    kills: list[tuple[int, int]] = []  # (raw rows, rows under FINAL) at each kill
    with connect(store_settings) as store:
        def raw() -> int:
            return int(store.query("SELECT count() FROM actions").rows[0][0])

        try:
            consumer.start()
            for _ in range(KILLS):
                # a seeded random moment after this incarnation's first insert: mid-batch, mid-commit, ...
                before = raw()
                wait_until(lambda: raw() > before, 60, "the restarted consumer's first insert", poll=0.05,  # noqa: B023 - wait_until calls it within this iteration
                           alive=[consumer])
                time.sleep(rng.uniform(0.0, 0.8))
                consumer.kill9()
                kills.append((raw(), count_final(store)))
                consumer.start()
            wait_until(lambda: count_final(store) >= CRASH_EVENTS, 120, f"{CRASH_EVENTS} events stored",
                       alive=[consumer])
            time.sleep(2)  # the last batch's watermark incidents
        finally:
            code = consumer.stop()
        stored = count_final(store)
        raw_rows = raw()
        dupes = duplicated_events(store)
        incidents = stored_incidents(store)
        print(f"\n[consumer crash] injected: {KILLS} x kill -9 at (raw rows, rows FINAL) {kills}; "
              f"events published {len(log)}")
        print(f"[consumer crash] counted: events FINAL {stored}, raw rows {raw_rows} (re-read after kills), "
              f"event ids duplicated under FINAL {dupes}, incidents {len(incidents)} (reference {len(reference)}), "
              f"missing {len(reference.keys() - incidents.keys())}, extra {len(incidents.keys() - reference.keys())}, "
              f"starts {consumer.starts}, exit {code}, took {time.monotonic() - began:.1f}s")
    assert code == 0, consumer.log()[-3000:]
    assert stored == len(log)
    assert dupes == 0
    assert_incidents_equal(incidents, reference, "uninterrupted reference")
