"""Poison events against the rule engine: one event must never cost another event, key or tenant its
incident. Each test states the attack (the exact record) and the expected outcome.

Records go straight to :class:`RuleEvaluator` (the sink and the rules worker hand it decoded
records the same way); the broker-facing versions are in ``test_poison_consumer.py``.
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

import pytest

from agentaudit.rules import RuleEvaluator, load_evaluator, load_rule_set
from agentaudit.rules.evaluator import RULE_ERROR_ID
from agentaudit.schemas import AvroCodec, Incident
from tests.sink_support import action_record

DAY_US = 86_400_000_000

_RULES = """required_engine_version: 1

rules:
  - id: test.spend
    desc: >
      An agent spent more than 5 USD in a day.
    condition: phase != start
    aggregate: {fn: sum, field: cost_usd, threshold: 5}
    by: [agent_id]
    window: 1d
    output: "{agent_id} spent {value}"
    severity: high
    tags: [sandbox]
  - id: test.pricey
    desc: >
      One action cost more than 100 USD.
    condition: cost_usd > 100
    output: "{agent_id} paid {cost_usd}"
    severity: medium
    tags: [sandbox]
  - id: test.shell
    desc: >
      A shell tool was called.
    condition: name = "shell.exec"
    output: "{agent_id} ran {name}"
    severity: high
    tags: [sandbox]
"""


def _event(n: int, tenant: str, agent: str, **fields: Any) -> dict[str, Any]:
    record = action_record(n, tenant=tenant, agent_id=agent, event_id=str(uuid.UUID(int=n + 1)), **fields)
    record.update(event_hash="", _partition=0, _offset=n)
    return record


def _by(incidents: list[Incident]) -> dict[tuple[str, str], Incident]:
    """The last version of each incident, by (rule, tenant)."""
    return {(i.rule_id, i.tenant): i for i in incidents}


def test_two_1e308_costs_do_not_cost_another_tenant_its_budget_incident() -> None:
    """Attack: tenant ``evil`` sends two valid events with ``cost_usd=1e308`` in the batch where tenant
    ``victim``'s agent spends 6 x 10 USD (budget 50/day, rule cost.agent-daily-budget of the default
    pack). Before: the sum overflowed at end of batch and the rule dropped the whole batch's events,
    so ``victim``'s overspend raised nothing. Expected: both budget incidents; evil's sum saturates
    to ``inf`` (it fires), victim's is exactly 60."""
    evaluator = load_evaluator(None)
    batch = [_event(0, "evil", "e-1", cost_usd=1e308, kind="chat", name="gpt"),
             _event(1, "evil", "e-1", cost_usd=1e308, kind="chat", name="gpt")]
    batch += [_event(2 + i, "victim", "v-1", cost_usd=10.0, kind="chat", name="gpt") for i in range(6)]
    incidents = _by(evaluator.evaluate(batch) + evaluator.flush())
    victim = incidents[("cost.agent-daily-budget", "victim")]
    assert victim.attributes["value"] == "60.0" and victim.count == 6
    evil = incidents[("cost.agent-daily-budget", "evil")]
    assert evil.attributes["value"] == "inf" and evil.count == 2
    assert evaluator.runtime_errors == 0  # an overflow is a defined outcome, not a failure
    assert all(i.rule_id != RULE_ERROR_ID for i in incidents.values())


def test_huge_finite_costs_sum_exactly_and_snapshot_round_trips() -> None:
    """Attack: costs of 1e308 (and of 1.5e302, just past where ``round(v * 1e6)`` overflows) mixed
    with cents. Expected: the sum is exact in integer millionths whatever the order; a snapshot
    (an integer beyond 64 bits) restores and the next events still add up."""
    rules = load_rule_set(None)
    first = RuleEvaluator(rules)
    costs = [1e308, 0.01, 1.5e302, -0.0, 0.02]
    first.evaluate([_event(i, "t", "a", cost_usd=c, kind="chat", name="gpt") for i, c in enumerate(costs)])
    state = first.snapshot()
    assert json.loads(state)["version"] == 2
    second = RuleEvaluator(rules)
    second.restore(state)
    out = second.evaluate([_event(10, "t", "a", cost_usd=0.5, kind="chat", name="gpt")])
    spend = next(rt for rt in second.runtimes if rt.rule.id == "cost.agent-daily-budget")
    [acc] = spend.hits.accs.values()
    assert acc.values["_sum"] == int(1e308) * 10**6 + int(1.5e302) * 10**6 + 10_000 + 20_000 + 500_000
    budget = _by(out + second.flush())[("cost.agent-daily-budget", "t")]
    assert budget.count == 5 and budget.attributes["value"] == "1.0000015e+308"  # -0.0 fails cost_usd > 0


@pytest.fixture(scope="module")
def rule_set(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("rules") / "poison.yaml"
    path.write_text(_RULES)
    return load_rule_set([str(path)])


def test_an_event_a_rule_crashes_on_fails_alone_and_is_reported(rule_set) -> None:
    """Attack: a record whose ``cost_usd`` is the list ``[1]`` (a decoder bug or a third-party producer
    of records) among good events of two tenants. ``test.pricey`` (``cost_usd > 100``) and
    ``test.spend`` (sum of cost_usd) raise TypeError on it. Expected: those two rules fail on that
    event alone, each recorded as a ``rule_error`` incident naming the rule, the event and the
    error; ``test.shell`` still judges the poison event (it is a shell call); every other event of
    both tenants is judged by every rule."""
    evaluator = RuleEvaluator(rule_set)
    poison = _event(0, "t1", "a-1", cost_usd=[1], name="shell.exec")
    batch = [poison]
    batch += [_event(1 + i, "t1", "a-1", cost_usd=2.0) for i in range(3)]  # 6 USD: over t1's budget
    batch += [_event(10 + i, "t2", "b-1", cost_usd=3.0) for i in range(2)]  # 6 USD: over t2's budget
    batch += [_event(20, "t2", "b-1", cost_usd=150.0, name="shell.exec")]
    incidents = evaluator.evaluate(batch) + evaluator.flush()
    got = _by(incidents)
    assert got[("test.spend", "t1")].count == 3 and got[("test.spend", "t1")].attributes["value"] == "6.0"
    assert got[("test.spend", "t2")].count == 3 and got[("test.spend", "t2")].attributes["value"] == "156.0"
    assert got[("test.pricey", "t2")].event_ids == (batch[-1]["event_id"],)
    assert got[("test.shell", "t1")].event_ids == (poison["event_id"],)
    assert got[("test.shell", "t2")].event_ids == (batch[-1]["event_id"],)
    errors = {i.key: i for i in incidents if i.rule_id == RULE_ERROR_ID}
    assert sorted(errors) == ["test.pricey", "test.spend"]
    for rule_id, incident in errors.items():
        assert incident.tenant == "t1" and incident.event_ids == (poison["event_id"],)
        assert incident.attributes["rule"] == rule_id and incident.attributes["event_id"] == poison["event_id"]
        assert "TypeError" in incident.attributes["error"] and rule_id in incident.summary
        assert incident.severity == "high"
    assert evaluator.runtime_errors == 2
    # Redelivered (a retried batch): judged once, the rule_error count does not grow.
    assert [i for i in evaluator.evaluate([poison]) if i.rule_id == RULE_ERROR_ID] == []


def test_an_event_whose_key_cannot_be_read_fails_alone(rule_set) -> None:
    """Attack: a record without ``agent_id`` (the field every rule here keys by) among good events of
    the same agent and tenant. Expected: the aggregate and the predicate fail on it alone (rule_error,
    KeyError); the other events are still grouped, summed and matched."""
    evaluator = RuleEvaluator(rule_set)
    keyless = _event(0, "t1", "a-1", name="shell.exec", cost_usd=1.0)
    del keyless["agent_id"]
    batch = [keyless] + [_event(1 + i, "t1", "a-1", cost_usd=2.0) for i in range(3)]
    batch.append(_event(9, "t1", "a-1", name="shell.exec"))
    incidents = evaluator.evaluate(batch) + evaluator.flush()
    got = _by(incidents)
    assert got[("test.spend", "t1")].count == 4 and got[("test.spend", "t1")].attributes["value"] == "6.001"
    assert got[("test.shell", "t1")].event_ids == (batch[-1]["event_id"],)
    errors = {i.key: i for i in incidents if i.rule_id == RULE_ERROR_ID}
    assert sorted(errors) == ["test.shell", "test.spend"]
    assert all("KeyError" in e.attributes["error"] and e.event_ids == (keyless["event_id"],) for e in errors.values())


def test_the_rule_goes_on_after_a_failure(rule_set) -> None:
    """After failing on a poison event, the same rule judges the next batches normally, and a second
    poison event of the same hour updates the one rule_error incident (count 2)."""
    evaluator = RuleEvaluator(rule_set)
    first = evaluator.evaluate([_event(0, "t1", "a-1", cost_usd=[1])])
    later = evaluator.evaluate([_event(1, "t1", "a-1", cost_usd=None), _event(2, "t1", "a-1", cost_usd=200.0)])
    errors = [i for i in first + later if i.rule_id == RULE_ERROR_ID and i.key == "test.pricey"]
    assert [e.count for e in errors] == [1, 2] and errors[0].incident_id == errors[1].incident_id
    assert any(i.rule_id == "test.pricey" and i.count == 1 for i in later)
    assert any(i.rule_id == "test.spend" for i in later + evaluator.flush())


def test_a_huge_event_field_cannot_make_an_unpublishable_incident(rule_set) -> None:
    """Attack: a valid 990 000-character tool name that a rule quotes in its output (``{name}``).
    Expected: the incident's summary is cut to a few KB (it must fit a Kafka message), saying so."""
    evaluator = RuleEvaluator(rule_set)
    name = "x" * 990_000
    incidents = evaluator.evaluate([_event(0, "t", "a", name=name, cost_usd=500.0)]) + evaluator.flush()
    pricey = _by(incidents)[("test.pricey", "t")]
    assert len(pricey.summary) < 5_000
    big = RuleEvaluator(rule_set)
    shell = big.evaluate([_event(1, "t", "a", name="shell.exec", attributes={"k": "v" * 900_000})])
    assert all(len(AvroCodec("incident").encode(i.to_avro())) < 20_000 for i in shell)


@pytest.mark.parametrize("cost", [math.nan, math.inf, -math.inf])
def test_non_finite_costs_are_refused_at_decoding(cost: float) -> None:
    """Attack: ``cost_usd`` NaN or infinite in an otherwise valid event. Expected: the codec refuses it
    (reason ``invalid``), so it is dead-lettered and never reaches a rule."""
    codec = AvroCodec("action")
    records, _, failures = codec.decode_batch([codec.encode(action_record(0, cost_usd=cost))])
    assert records == [] and [e.reason for _, e in failures] == ["invalid"]
