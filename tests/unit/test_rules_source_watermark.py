"""Source-partition watermarks: incidents do not depend on how in-order sources are interleaved."""

from __future__ import annotations

import zlib

from agentaudit.rules import RuleEvaluator, load_rule_set
from tests.synthetic_fleet import fleet_records

RULES = load_rule_set(None)
SOURCES = tuple(f"actions:{p}" for p in range(3))
RECORDS = fleet_records(1500, agents=8, tenants=2, seed=11, pace=20)


def by_source() -> list[list[dict]]:
    """The log split as the actions topic would hold it: by stream id, each part in event-time order."""
    parts: list[list[dict]] = [[] for _ in SOURCES]
    for r in sorted(RECORDS, key=lambda r: r["event_time_us"]):
        p = zlib.crc32(r["stream_id"].encode()) % len(SOURCES)
        parts[p].append({**r, "_source": SOURCES[p]})
    return parts


def judge(records: list[dict], sources: tuple[str, ...] | None, batch: int = 100) -> dict[str, str]:
    evaluator = RuleEvaluator(RULES, lateness_us=0, sources=sources)
    latest: dict[str, str] = {}
    for start in range(0, len(records), batch):
        for incident in evaluator.evaluate(records[start:start + batch]):
            latest[incident.incident_id] = incident.model_dump_json()
    for incident in evaluator.flush():
        latest[incident.incident_id] = incident.model_dump_json()
    return latest


def test_interleaving_of_in_order_sources_does_not_change_incidents() -> None:
    parts = by_source()
    assert all(parts), "every source carries events"
    one_after_another = [r for part in parts for r in part]
    round_robin = [part[i] for i in range(max(map(len, parts))) for part in parts if i < len(part)]
    first = judge(one_after_another, SOURCES)
    assert first, "the log raised no incident"
    assert judge(round_robin, SOURCES) == first
    # without source watermarks the first source alone drives the watermark, and the others arrive late
    assert judge(one_after_another, None) != first


def test_snapshot_keeps_source_maxima() -> None:
    parts = by_source()
    records = [part[i] for i in range(max(map(len, parts))) for part in parts if i < len(part)]
    half = len(records) // 2
    whole = judge(records, SOURCES)
    evaluator = RuleEvaluator(RULES, lateness_us=0, sources=SOURCES)
    latest = {i.incident_id: i.model_dump_json() for i in evaluator.evaluate(records[:half])}
    restored = RuleEvaluator(RULES, lateness_us=0, sources=SOURCES)
    restored.restore(evaluator.snapshot())
    assert restored.watermark_us == evaluator.watermark_us > 0
    for incident in restored.evaluate(records[half:]) + restored.flush():
        latest[incident.incident_id] = incident.model_dump_json()
    assert latest == whole
