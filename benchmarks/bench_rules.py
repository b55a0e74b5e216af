"""Rule engine throughput: events/s through ``RuleEvaluator.evaluate()`` for the default pack.

The records come from a seeded, simulator-like fleet (model calls, tool calls, loops,
approvals, secrets, failures), pre-built so only evaluation is timed, in batches as the sink
hands them over. The baseline is a loop that only reads, per event, the fields the pack's
rules read (dict access): the engine cannot beat it, and the ratio says what the rules cost.
``python -m benchmarks rules`` (``AGENTAUDIT_BENCH_RULES_EVENTS`` sets N, default 50000).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pyarrow as pa

from agentaudit.rules import load_evaluator, load_rule_set
from tests.rules_tables import actions_table_of
from tests.synthetic_fleet import fleet_records

BATCH_SIZE = 5_000
ROUNDS = 3


def _baseline(records: list[dict[str, Any]]) -> float:
    """Dict access of the fields the pack reads, once per rule and event, with no logic."""
    rules = len(load_rule_set(None).rules)
    started = time.perf_counter()
    sink = 0
    for start in range(0, len(records), BATCH_SIZE):
        for r in records[start:start + BATCH_SIZE]:
            for _ in range(rules):
                sink += (r["event_time_us"] + r["depth"] + r["payload_bytes"]) if r["kind"] and r["name"] else 0
                sink += 1 if r["status"] == "error" and r["cost_usd"] > 1.0 and r["actor"]["type"] else 0
    return time.perf_counter() - started


def _evaluate(records: list[dict[str, Any]]) -> tuple[float, int]:
    evaluator = load_evaluator(None)
    started = time.perf_counter()
    incidents = 0
    for start in range(0, len(records), BATCH_SIZE):
        incidents += len(evaluator.evaluate(records[start:start + BATCH_SIZE]))
    incidents += len(evaluator.flush())
    return time.perf_counter() - started, incidents


def _evaluate_tables(tables: list[pa.Table]) -> tuple[float, int]:
    evaluator = load_evaluator(None)
    started = time.perf_counter()
    incidents = 0
    for table in tables:
        incidents += len(evaluator.evaluate_table(table))
    incidents += len(evaluator.flush())
    return time.perf_counter() - started, incidents


def run() -> list[dict]:
    n = int(os.environ.get("AGENTAUDIT_BENCH_RULES_EVENTS", "50000"))
    records = fleet_records(n, agents=50, seed=1)
    tables = [actions_table_of(records[start:start + BATCH_SIZE]) for start in range(0, len(records), BATCH_SIZE)]
    rules = len(load_rule_set(None).rules)
    engine = vector = float("inf")
    for _ in range(ROUNDS):  # alternating, so that load on the machine falls on both paths alike
        took, found = _evaluate(records)
        engine = min(engine, took)
        took, found_vector = _evaluate_tables(tables)
        vector = min(vector, took)
        if found_vector != found:
            raise AssertionError(f"evaluate_table() returned {found_vector} incidents, evaluate() {found}")
    base = min(_baseline(records) for _ in range(ROUNDS))
    eps, base_eps = len(records) / engine, len(records) / base
    vector_eps = len(records) / vector
    per_event_us = engine / len(records) * 1e6
    return [
        {"name": f"rules evaluate_table() ({rules} rules, default pack, Arrow batches)", "value": vector_eps,
         "unit": "events/s", "baseline": eps, "baseline_name": "evaluate() per event, same run",
         "ratio": vector_eps / eps, "goal": ">= 150k events/s"},
        {"name": f"rules evaluate() ({rules} rules, default pack)", "value": eps, "unit": "events/s",
         "baseline": base_eps, "baseline_name": f"dict access of the same fields x {rules} rules",
         "ratio": eps / base_eps, "goal": None},
        {"name": "rules cost per event", "value": per_event_us, "unit": "us/event",
         "baseline": per_event_us / rules, "baseline_name": "per rule", "ratio": None, "goal": None},
    ]


if __name__ == "__main__":
    for row in run():
        ratio = f" ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        print(f"{row['name']}: {row['value']:,.1f} {row['unit']} (baseline {row['baseline_name']}: "
              f"{row['baseline']:,.1f}){ratio}")
