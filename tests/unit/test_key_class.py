"""Key classes: what each rule kind implies, and that judging per key-class shard decides what one evaluator does."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.key_class import TENANT, KeyRouter, key_class_of, split_rule_set
from agentaudit.rules.keyed import KEY_CLASS_FIELD, KeyedEvaluator
from tests.synthetic_fleet import fleet_records

PACK = load_rule_set(None)


def rule_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(body, encoding="utf-8")
    return path


RULE = """\
required_engine_version: 1
rules:
  - id: r
    desc: d
    condition: kind = execute_tool
    output: "{{agent_id}}"
    severity: low
    tags: [sandbox]
{extra}
"""


@pytest.mark.parametrize(("extra", "expected"), [
    ("", "agent_id"),  # a predicate: its by: default
    ("  by: [name, model]\n  aggregate: {fn: count, threshold: 3}\n  window: 1m", "model+name"),
    ("  by: [agent_id, name]\n  aggregate: {fn: count, threshold: 3}\n  window: 1m", "agent_id"),  # coarser is enough
    ("  by: []\n  aggregate: {fn: count, threshold: 3}\n  window: 1m", TENANT),
    ("  sequence: {then: status = error, within: 5m}", "trace_id"),
    ("  by: [agent_id]\n  sequence: {then: status = error, within: 5m}", TENANT),  # a trace spans agents
    ("  ancestor: {approval: kind = approval, within: 1h}\n  by: [trace_id]", "trace_id"),
    ("  absence: {within: 5m}", "agent_id"),  # start and end of one action share its agent
    ("  by: [status]\n  absence: {within: 5m}", TENANT),  # they need not share a status
    ("  integrity: {checks: [gap]}", "stream_id"),
    ("  by: [name]\n  aggregate: {fn: count, threshold: 3}\n  window: trace", "trace_id"),
])
def test_each_kind_implies_its_key_class(tmp_path: Path, extra: str, expected: str) -> None:
    extra = "\n".join("  " + line for line in extra.splitlines())
    rule = load_rule_set(str(rule_file(tmp_path, RULE.format(extra=extra)))).rules[0]
    assert rule.key_class.name == expected == key_class_of(rule).name
    assert rule.key_class.why


def test_the_pack_splits_by_class_and_every_part_keeps_the_revision() -> None:
    parts = split_rule_set(PACK)
    assert sum(len(p.rules) for p in parts.values()) == len(PACK.rules)
    assert {p.revision for p in parts.values()} == {PACK.revision}
    assert {"trace_id", "agent_id", "stream_id", TENANT} <= set(parts)
    classes = {r.id: r.key_class.name for r in PACK.rules}
    assert classes["security.secret-then-egress"] == classes["security.unapproved-consequential-action"] == "trace_id"
    assert classes["integrity.sequence-gap"] == "stream_id"
    assert classes["cost.tenant-daily-budget"] == TENANT


def test_a_class_of_conditions_only_takes_the_events_they_match() -> None:
    router = KeyRouter(PACK)
    chat = next(r for r in fleet_records(40, agents=1, tenants=1, seed=1) if r["kind"] == "chat")
    classes = {name for name, _ in router.route(chat)}
    assert {"trace_id", "stream_id", "agent_id", "event_id", "model"} <= classes
    assert "name" not in classes  # the by: [name] rules judge tool calls only
    keys = dict(router.route(chat))
    assert keys["trace_id"] == f"trace_id\x1f{chat['tenant']}\x1f{chat['trace_id']}".encode()


def digest(incidents) -> str:
    return hashlib.sha256("\n".join(sorted(i.model_dump_json() for i in incidents)).encode()).hexdigest()


@pytest.mark.parametrize("shards", [1, 3, 7])
def test_judging_per_key_class_shard_decides_what_one_evaluator_does(shards: int) -> None:
    records = fleet_records(2500, agents=10, tenants=1, seed=3, pace=20)
    one = RuleEvaluator(PACK)
    expected = {i.incident_id: i for i in one.evaluate(records)}
    expected.update((i.incident_id, i) for i in one.flush())
    router = KeyRouter(PACK)
    evaluators = [KeyedEvaluator(PACK) for _ in range(shards)]
    batches: list[list[dict]] = [[] for _ in range(shards)]
    for r in records:
        for name, key in router.route(r):
            batches[zlib.crc32(key) % shards].append({**r, KEY_CLASS_FIELD: name})
    got: dict = {}
    for evaluator, batch in zip(evaluators, batches, strict=True):
        for start in range(0, len(batch), 300):
            for incident in evaluator.evaluate(batch[start:start + 300]):
                assert got.get(incident.incident_id, incident).count <= incident.count
                got[incident.incident_id] = incident
        for incident in evaluator.flush():
            got[incident.incident_id] = incident
    assert {"security.secret-then-egress", "load.hung-tool-call", "load.model-latency-avg"} <= {
        i.rule_id for i in expected.values()}  # a sequence, an absence and a closing-window aggregate
    assert digest(got.values()) == digest(expected.values())
    if shards > 1:
        assert max(map(len, batches)) < sum(map(len, batches)) * 0.6


def test_a_keyed_snapshot_restores_every_class_and_refuses_another_layout() -> None:
    records = fleet_records(600, agents=4, tenants=1, seed=2, pace=20)
    router = KeyRouter(PACK)
    copies = [{**r, KEY_CLASS_FIELD: name} for r in records for name, _ in router.route(r)]
    whole = KeyedEvaluator(PACK)
    expected = {i.incident_id: i for i in whole.evaluate(copies)}
    expected.update((i.incident_id, i) for i in whole.flush())
    first, second = KeyedEvaluator(PACK), KeyedEvaluator(PACK)
    got = {i.incident_id: i for i in first.evaluate(copies[:len(copies) // 2])}
    second.restore(first.snapshot())
    got.update((i.incident_id, i) for i in second.evaluate(copies[len(copies) // 2:]))
    got.update((i.incident_id, i) for i in second.flush())
    assert digest(got.values()) == digest(expected.values())
    fresh = KeyedEvaluator(PACK)
    fresh.restore(RuleEvaluator(PACK).snapshot())  # a per-tenant snapshot: ignored, state starts empty
    assert fresh.snapshot() == KeyedEvaluator(PACK).snapshot()
