"""Hot reload: replacing the rule file under a running ``agentaudit consume`` swaps to the new
revision between two batches, and a broken replacement keeps the old revision with a clear
error. Each event is judged by exactly one revision: never a mix, never none."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.rules import load_rule_set
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.fault.support import ConsumerProcess, count_final, produce_all, stack_env, wait_until
from tests.sink_support import framed_events

pytestmark = [pytest.mark.integration, pytest.mark.fault]

RULES = """required_engine_version: 1
rules:
  - id: fault.reload
    desc: >
      Flags one tool name; the test swaps which one.
    condition: kind = execute_tool and name = "{tool}"
    output: "{{agent_id}} called {{name}}"
    severity: low
    tags: [sandbox, test]
"""
WAVE = 40


def replace_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_rule_file_replaced_swaps_atomically_or_keeps_old_revision(
    kafka_settings_factory: Callable[..., KafkaSettings], group_factory,
    store_settings_factory: Callable[[], StoreSettings], tmp_path: Path,
):
    rules = tmp_path / "rules" / "reload.yaml"
    rules.parent.mkdir()
    (tmp_path / "v2.yaml").write_text(RULES.format(tool="beta"))
    rules.write_text(RULES.format(tool="alpha"))
    r1, r2 = load_rule_set([str(rules)]).revision, load_rule_set([str(tmp_path / "v2.yaml")]).revision
    kafka = kafka_settings_factory(partitions=2)
    store_settings = store_settings_factory()
    migrate(store_settings)
    waves: dict[str, tuple[str, str]] = {}  # event_id -> (wave, tool name)

    def produce(wave: str) -> None:
        events = []
        for tool in ("alpha", "beta"):
            for record, data in framed_events(WAVE, stream_id=f"{wave}-{tool}", name=tool):
                waves[record["event_id"]] = (wave, tool)
                events.append((record["stream_id"].encode(), data))
        produce_all(kafka, kafka.topics.actions, events)

    consumer = ConsumerProcess(stack_env(kafka, store_settings),
                               ["--group", group_factory(), "--batch-size", "500", "--rules", str(rules.parent)],
                               tmp_path / "consume.log")
    with connect(store_settings) as store:
        def stored() -> int:
            return count_final(store)

        try:
            consumer.start()
            produce("A")
            wait_until(lambda: stored() >= 2 * WAVE, 60, "wave A stored", alive=[consumer])
            replace_atomically(rules, RULES.format(tool="beta"))
            time.sleep(2.5)  # the watcher polls every second; the swap waits for the next batch
            produce("B")
            wait_until(lambda: stored() >= 4 * WAVE, 60, "wave B stored", alive=[consumer])
            wait_until(lambda: f"rules reloaded: revision {r1} -> {r2}" in consumer.log(), 10, "the reload log line")
            rules.write_text("rules:\n  - id: [half written\n")  # a torn, non-atomic write
            wait_until(lambda: "rules reload failed, keeping revision" in consumer.log(), 10, "the failure log line")
            produce("C")
            wait_until(lambda: stored() >= 6 * WAVE, 60, "wave C stored", alive=[consumer])
            time.sleep(1)
        finally:
            code = consumer.stop()
        rows = store.query("SELECT rule_revision, arrayJoin(event_ids) FROM incidents FINAL").rows
    judged: dict[str, set[str]] = {}
    for revision, event_id in rows:
        judged.setdefault(event_id, set()).add(revision)
    by_wave: dict[tuple[str, str, str], int] = {}
    for event_id, revisions in judged.items():
        wave, tool = waves[event_id]
        for revision in revisions:
            key = (wave, tool, {r1: "r1", r2: "r2"}.get(revision, revision))
            by_wave[key] = by_wave.get(key, 0) + 1
    failed_line = re.search(r"rules reload failed, keeping revision \S+: .*", consumer.log())
    print(f"\n[hot reload] injected: rule file {r1} (alpha) -> atomic replace {r2} (beta) -> torn write; "
          f"3 waves of {2 * WAVE} events")
    print(f"[hot reload] counted: (wave, tool, revision) -> flagged events {dict(sorted(by_wave.items()))}; "
          f"failure logged: {failed_line.group(0)[:160] if failed_line else None}; exit {code}")
    assert code == 0, consumer.log()[-3000:]
    assert all(len(revisions) == 1 for revisions in judged.values()), "an event judged by two revisions"
    assert by_wave == {("A", "alpha", "r1"): WAVE, ("B", "beta", "r2"): WAVE, ("C", "beta", "r2"): WAVE}
    assert failed_line and "reload.yaml" in failed_line.group(0) and r2 in failed_line.group(0)
