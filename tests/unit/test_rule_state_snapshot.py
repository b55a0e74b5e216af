"""The rule engine's snapshot bytes: canonical JSON that restores to the same future incidents."""

from __future__ import annotations

import json
from pathlib import Path

from agentaudit.rules import RuleEvaluator, load_rule_set
from tests.synthetic_fleet import fleet_records

RECORDS = fleet_records(3000, agents=10, seed=21)
CUT = 1700


def judge_after_restore(rule_set, records: list[dict], data: bytes) -> list[str]:
    evaluator = RuleEvaluator(rule_set)
    evaluator.restore(data)
    incidents = [evaluator.evaluate(records[i:i + 300]) for i in range(0, len(records), 300)]
    return sorted(i.model_dump_json() for batch in [*incidents, evaluator.flush()] for i in batch)


def test_a_snapshot_written_by_the_standard_library_still_restores() -> None:
    rule_set = load_rule_set(None)
    first = RuleEvaluator(rule_set)
    for i in range(0, CUT, 300):
        first.evaluate(RECORDS[i:min(i + 300, CUT)])
    snapshot = first.snapshot()
    # the bytes a state dir holds from before orjson: same state, ASCII-escaped, standard-library floats
    legacy = json.dumps(json.loads(snapshot), sort_keys=True, separators=(",", ":")).encode()
    rest = RECORDS[CUT:]
    assert judge_after_restore(rule_set, rest, legacy) == judge_after_restore(rule_set, rest, snapshot)


def test_non_ascii_state_round_trips_byte_for_byte() -> None:
    rule_set = load_rule_set(None)
    records = [{**r, "tenant": "tenant-ü", "agent_id": r["agent_id"] + "-代理", "name": r["name"] + "-é"}
               for r in RECORDS[:CUT]]
    first = RuleEvaluator(rule_set)
    first.evaluate(records)
    snapshot = first.snapshot()
    assert "代理".encode() in snapshot  # UTF-8 text, not \\u escapes
    second = RuleEvaluator(rule_set)
    second.restore(snapshot)
    assert second.snapshot() == snapshot
    assert second.flush() == first.flush()


def test_state_beyond_64_bit_integers_falls_back_to_the_standard_library(tmp_path: Path) -> None:
    path = tmp_path / "sum.yaml"
    path.write_text("""required_engine_version: 1
rules:
  - id: unit.spend
    desc: >
      Spend per agent.
    condition: kind = chat
    aggregate: {fn: sum, field: cost_usd, threshold: 1}
    by: [agent_id]
    window: 1h
    output: "{agent_id} spent {value}"
    severity: low
    tags: [sandbox, test]
""")
    rule_set = load_rule_set([str(path)])
    model_call = next(r for r in RECORDS if r["kind"] == "chat")
    huge = {**model_call, "cost_usd": 1e20}  # kept as millionths: 1e26 does not fit 64 bits
    first = RuleEvaluator(rule_set)
    first.evaluate([huge])
    snapshot = first.snapshot()
    (_, acc), = json.loads(snapshot)["rules"]["unit.spend"]["accs"]
    assert acc["values"]["_sum"] > 2**64
    second = RuleEvaluator(rule_set)
    second.restore(snapshot)
    assert second.snapshot() == snapshot
    assert [i.summary for i in second.flush()] == [i.summary for i in first.flush()]
