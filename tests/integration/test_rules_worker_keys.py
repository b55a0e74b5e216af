"""Rules partitioned by their own keys: one tenant's log, judged by 1 or 3 rules workers on a real broker.

Before key classes the worker re-keyed by tenant, so one tenant was judged by one process. Now each
event is copied once per key class that needs it (trace, by: fields, stream...), so the three
workers share the tenant: the incidents must be the same ones (same ids, same rows) as one worker's
and as one evaluator's over the whole log, and no worker may receive more than 40% of the copies.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from agentaudit.consumers.rules_worker import KEY_CLASS_HEADER, RulesWorker
from agentaudit.infra.kafka.reading import read_all
from agentaudit.rules import DEFAULT_LATENESS_US, RuleEvaluator, load_rule_set
from agentaudit.rules.key_class import KeyRouter
from agentaudit.schemas import AvroCodec, Incident
from tests.fixtures.broker import test_consumer_config
from tests.integration.test_rules_worker import digest, produce_actions, published_incidents, settle
from tests.synthetic_fleet import fleet_records

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.slow]

RULES = load_rule_set(None)
RECORDS = fleet_records(3000, agents=12, tenants=1, seed=11, pace=20)  # one tenant
MAX_SHARE = 0.40


def run_workers(kafka, instances: int, group: str) -> tuple[list[RulesWorker], dict[int, int]]:
    """``instances`` workers in one group, joined before the log is produced, run until every copy is judged;
    the workers and which one held each repartition partition throughout."""
    config = test_consumer_config(**{"auto.offset.reset": "earliest"})
    workers = [RulesWorker(kafka, RuleEvaluator(RULES, lateness_us=DEFAULT_LATENESS_US), group=group,
                           batch_size=500, consumer_config=config) for _ in range(instances)]
    try:
        settle(workers, kafka.partitions)  # all instances join before any data flows
        produce_actions(kafka, RECORDS)
        deadline = time.monotonic() + 120
        while sum(w.evaluated for w in workers) < len(RECORDS):
            for worker in workers:
                worker.run_once()
            assert time.monotonic() < deadline, f"evaluated {[float(w.evaluated) for w in workers]} of {len(RECORDS)}"
        held = {tp.partition: n for n, w in enumerate(workers) for tp in w.assignment()[1]}
        assert sorted(held) == list(range(kafka.partitions)), held
        for worker in workers:
            worker.flush()  # the end of the replayed range: close every window
        return workers, held
    finally:
        for worker in workers:
            worker.close()


def one_evaluator() -> list[Incident]:
    """What one evaluator decides over the whole log (per-tenant watermarks), ending with a flush."""
    evaluator = RuleEvaluator(RULES, lateness_us=DEFAULT_LATENESS_US)
    latest: dict[str, Incident] = {}
    for start in range(0, len(RECORDS), 500):
        for incident in evaluator.evaluate(RECORDS[start:start + 500]):
            latest[incident.incident_id] = incident
    for incident in evaluator.flush():
        latest[incident.incident_id] = incident
    return list(latest.values())


def test_one_tenant_judged_by_three_workers_gives_one_workers_incidents(kafka_settings_factory, group_factory):
    expected = one_evaluator()
    assert {"security.secret-then-egress", "load.hung-tool-call", "load.model-latency-avg"} <= {
        i.rule_id for i in expected}, "the log must exercise a sequence, an absence and a closing window"
    assert {i.tenant for i in expected} == {"tenant-0"}
    router = KeyRouter(RULES)
    copies = sum(len(router.route(r)) for r in RECORDS)
    runs: dict[int, list[Incident]] = {}
    for instances in (1, 3):
        kafka = kafka_settings_factory(partitions=3)
        workers, held = run_workers(kafka, instances, group_factory("rules"))
        incidents = [i for w in workers for i in w.incidents.values()]
        assert len({i.incident_id for i in incidents}) == len(incidents), "an incident decided in two places"
        assert digest(published_incidents(kafka, group_factory("read"))) == digest(incidents)
        runs[instances] = incidents
        received = [w.received for w in workers]
        assert sum(received) == copies, f"copies judged {received}, written {copies}"
        if instances == 3:
            # What each worker actually received: its evaluate loop's copies, and which events they were.
            codec = AvroCodec("action")
            events: list[set[str]] = [set() for _ in workers]
            per_class: Counter[tuple[int, str]] = Counter()
            for m in read_all(kafka, kafka.topics.repartition, timeout=30, idle=2):
                if m.value() is None:
                    continue  # a watermark marker
                worker = held[m.partition()]
                events[worker].add(codec.decode(m.value())["event_id"])
                per_class[worker, dict(m.headers())[KEY_CLASS_HEADER].decode()] += 1
            shares = [n / sum(received) for n in received]
            print(f"\n{len(RECORDS)} events, {copies} copies ({copies / len(RECORDS):.2f} per event); per worker: "
                  f"copies {received} (shares {[round(s, 3) for s in shares]}), distinct events "
                  f"{[len(e) for e in events]} ({[round(len(e) / len(RECORDS), 3) for e in events]}); "
                  f"per class {sorted(per_class.items())}")
            assert max(shares) <= MAX_SHARE, f"one worker received {max(shares):.1%} of the copies: {received}"
            assert min(received) > 0
    assert digest(runs[1]) == digest(runs[3]) == digest(expected), _difference(expected, runs)


def _difference(expected: list[Incident], runs: dict[int, list[Incident]]) -> str:
    want = {i.incident_id: i.count for i in expected}
    out = []
    for instances, incidents in runs.items():
        got = {i.incident_id: i.count for i in incidents}
        out.append(f"{instances}: " + ", ".join(f"{k[:8]} want={want.get(k)} got={got.get(k)}"
                                                 for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k))[:800])
    return "; ".join(out)
