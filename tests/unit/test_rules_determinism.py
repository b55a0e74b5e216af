"""Same events + same rules -> byte-identical incidents, whatever the batching, interleaving or restarts."""

from __future__ import annotations

import hashlib
import random

import pytest

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import interleave, replay
from agentaudit.schemas import Incident
from tests.synthetic_fleet import fleet_records

HOUR_US = 3_600_000_000


@pytest.fixture(scope="module")
def rule_set():
    return load_rule_set(None)


@pytest.fixture(scope="module")
def records():
    return fleet_records(4000, agents=12, seed=3)


def digest(incidents: list[Incident]) -> str:
    lines = sorted(i.model_dump_json() for i in incidents)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def final(batches: list[list[Incident]]) -> list[Incident]:
    latest: dict[str, Incident] = {}
    for batch in batches:
        for incident in batch:
            latest[incident.incident_id] = incident
    return list(latest.values())


def test_the_fleet_raises_incidents_of_several_kinds(rule_set, records) -> None:
    incidents = replay(RuleEvaluator(rule_set), records, batch_size=500)
    kinds = {i.attributes["kind"] for i in incidents}
    assert {"predicate", "aggregate", "sequence", "absence"} <= kinds
    assert all(i.rule_revision == rule_set.revision for i in incidents)


def test_run_twice_gives_identical_incidents(rule_set, records) -> None:
    first = replay(RuleEvaluator(rule_set), records, batch_size=500)
    second = replay(RuleEvaluator(rule_set), records, batch_size=500)
    assert first and digest(first) == digest(second)


@pytest.mark.parametrize(("seed", "batch_size"), [(0, 7), (1, 100), (2, 997), (3, None)])
def test_interleaving_and_batching_do_not_change_incidents(rule_set, records, seed, batch_size) -> None:
    # every stream keeps its order (Kafka keys by stream id); streams interleave at random and
    # may run ahead of each other, so the allowed lateness must cover the skew
    reference = replay(RuleEvaluator(rule_set, lateness_us=HOUR_US), records, batch_size=500)
    shuffled = interleave(records, random.Random(seed))
    assert [r["event_id"] for r in shuffled] != [r["event_id"] for r in records]
    got = replay(RuleEvaluator(rule_set, lateness_us=HOUR_US), shuffled, batch_size=batch_size)
    assert digest(got) == digest(reference)


def test_in_order_input_needs_no_extra_lateness(rule_set, records) -> None:
    reference = replay(RuleEvaluator(rule_set, lateness_us=HOUR_US), records, batch_size=500)
    assert digest(replay(RuleEvaluator(rule_set), records, batch_size=250)) == digest(reference)


def test_state_survives_a_restart_through_snapshot(rule_set, records) -> None:
    reference = replay(RuleEvaluator(rule_set), records, batch_size=400)
    cut = 1613  # not a batch boundary of the reference run
    first = RuleEvaluator(rule_set)
    batches = [first.evaluate(records[i:min(i + 400, cut)]) for i in range(0, cut, 400)]
    snapshot = first.snapshot()
    assert snapshot == first.snapshot()  # canonical
    second = RuleEvaluator(rule_set)
    second.restore(snapshot)
    batches += [second.evaluate(records[i:i + 400]) for i in range(cut, len(records), 400)]
    batches.append(second.flush())
    assert digest(final(batches)) == digest(reference)


def test_a_snapshot_of_another_revision_is_ignored(rule_set, records, tmp_path) -> None:
    evaluator = RuleEvaluator(rule_set)
    evaluator.evaluate(records[:500])
    snapshot = evaluator.snapshot()
    path = tmp_path / "one.yaml"
    path.write_text("rules:\n  - {id: x, desc: d, severity: low, tags: [sandbox], output: o, condition: 'true'}\n")
    other = RuleEvaluator(load_rule_set([str(path)]))
    other.restore(snapshot)
    assert other.watermark_us == 0


def test_incident_ids_depend_on_rule_revision_key_and_window(rule_set, records, tmp_path) -> None:
    incidents = replay(RuleEvaluator(rule_set), records, batch_size=500)
    ids = {i.incident_id for i in incidents}
    assert len(ids) == len(incidents)
    pack = [str(p) for p in sorted(rule_set.files)]
    extra = tmp_path / "zz.yaml"
    extra.write_text("lists:\n  - {name: unused_list, items: [x]}\n")
    changed = load_rule_set([*pack, str(extra)])
    assert changed.revision != rule_set.revision
    assert ids.isdisjoint(i.incident_id for i in replay(RuleEvaluator(changed), records, batch_size=500))


def test_a_tenant_s_incidents_do_not_depend_on_the_other_tenants_it_shares_a_consumer_with(rule_set, records) -> None:
    # tenant-1's events alone, versus mixed with tenant-0's events shifted two hours ahead: with a
    # shared watermark, tenant-0 would close tenant-1's windows early and decide its checks too soon
    ahead = [dict(r, event_time_us=r["event_time_us"] + 2 * HOUR_US) for r in records if r["tenant"] == "tenant-0"]
    alone = [r for r in records if r["tenant"] == "tenant-1"]
    mixed = sorted(alone + ahead, key=lambda r: r["event_time_us"] - (2 * HOUR_US if r["tenant"] == "tenant-0" else 0))
    solo = replay(RuleEvaluator(rule_set), alone, batch_size=300)
    shared = [i for i in replay(RuleEvaluator(rule_set), mixed, batch_size=300) if i.tenant == "tenant-1"]
    assert solo and digest(shared) == digest(solo)


def test_a_redelivered_batch_is_judged_once(rule_set, records) -> None:
    once = replay(RuleEvaluator(rule_set), records, batch_size=500)
    evaluator = RuleEvaluator(rule_set)
    latest: dict[str, Incident] = {}
    for start in range(0, len(records), 500):
        batch = records[start:start + 500]
        for incident in evaluator.evaluate(batch) + evaluator.evaluate(batch):  # e.g. the sink retried the batch
            latest[incident.incident_id] = incident
    for incident in evaluator.flush():
        latest[incident.incident_id] = incident
    assert digest(list(latest.values())) == digest(once)
