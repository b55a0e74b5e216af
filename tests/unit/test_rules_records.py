"""The rule runtimes' typed records: what they fold, and that they write snapshot version 2 unchanged."""

from __future__ import annotations

import dataclasses
import json

import orjson
import pytest

from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules._runtime._hits import MAX_EVENT_IDS, Acc, ErrorTally, plain
from agentaudit.rules._runtime.ancestor import Approval, Consequential
from agentaudit.schemas.integrity import ChainCursor, verify_stream
from tests.synthetic_fleet import fleet_records


def _acc() -> Acc:
    return Acc(tenant="t", key="k", ws=0, we=60)


def test_an_event_already_in_is_not_counted_again() -> None:
    acc = _acc()
    assert acc.add_event(5, "b", {"id": "b"})
    assert acc.add_event(3, "a", {"id": "a"})
    assert not acc.add_event(5, "b", {"id": "b"})
    assert acc.events == [(3, "a"), (5, "b")]
    assert (acc.first, acc.last) == (3, 5)


def test_the_smallest_pairs_are_kept_and_the_largest_is_the_representative() -> None:
    acc = _acc()
    for t in range(MAX_EVENT_IDS + 10, 0, -1):  # newest first: every insert lands before the kept ones
        acc.add_event(t, f"e{t}", {"t": t})
    assert acc.events == [(t, f"e{t}") for t in range(1, MAX_EVENT_IDS + 1)]
    assert acc.rep_sk == (MAX_EVENT_IDS + 10, f"e{MAX_EVENT_IDS + 10}")
    assert acc.raw == {"t": MAX_EVENT_IDS + 10}
    assert not acc.add_event(MAX_EVENT_IDS + 10, f"e{MAX_EVENT_IDS + 10}", None)  # the representative, beyond 50


def test_a_slim_representative_replaces_a_raw_one() -> None:
    acc = _acc()
    acc.add_event(1, "a", {"full": True})
    acc.add_event(2, "b", {"slim": True}, slim=True)
    assert acc.raw is None and acc.rep == {"slim": True}


@pytest.mark.parametrize("record", [Acc, ErrorTally])
def test_fields_are_declared_in_sorted_order_so_snapshots_stay_canonical(record: type) -> None:
    names = [f.name for f in dataclasses.fields(record)]
    assert names == sorted(names)


def test_the_raw_record_never_reaches_a_snapshot() -> None:
    acc = _acc()
    acc.add_event(1, "a", {"secret": "not-slimmed"})
    assert b"not-slimmed" not in orjson.dumps(acc)
    assert "raw" not in plain(acc)


def test_the_standard_library_fallback_writes_the_same_bytes() -> None:
    errors = ErrorTally()
    errors.add_failure(7, "x", "ValueError: boom", "agent", "trace")
    state = {"accs": [[["t", "k", 0], _acc()]], "errors": [errors]}
    state["accs"][0][1].add_event(3, "a", None)
    assert orjson.dumps(state, option=orjson.OPT_SORT_KEYS) == json.dumps(
        state, sort_keys=True, separators=(",", ":"), default=plain).encode()


def test_the_latest_failure_names_the_error() -> None:
    errors = ErrorTally()
    errors.add_failure(9, "late", "second", "a2", "t2")
    errors.add_failure(4, "early", "first", "a1", "t1")
    assert errors.count == 2 and errors.events == [(4, "early"), (9, "late")]
    assert (errors.error, errors.event_id, errors.agent_id) == ("second", "late", "a2")


def test_an_accumulator_reads_back_what_it_wrote() -> None:
    acc = _acc()
    acc.add_event(1, "a", {"x": 1}, slim=True)
    acc.values["_sum"] = 10**30  # beyond 64 bits, as sums of millionths can be
    again = Acc.from_json(json.loads(json.dumps(acc, default=plain)))
    assert plain(again) == plain(acc) and again.rep_sk == (1, "a")


def test_approvals_and_waiting_actions_keep_their_array_forms() -> None:
    assert Approval(1, "e", "a", "").to_json() == [1, "e", "a", ""]
    assert Approval(1, "e", "a", "p", ["h"], None).to_json() == [1, "e", "a", "p", ["h"], None]
    plain_due = [5, "e", "t\x1ftr", "a", "", [], {"tenant": "t"}, ["t", "k"]]
    assert Consequential.from_json(plain_due).to_json() == plain_due
    assert Consequential.from_json([*plain_due, ["h"]]).bound == ["h"]


def test_state_of_every_rule_kind_restores_and_writes_back_byte_for_byte() -> None:
    rule_set = load_rule_set(None)
    kinds = {rule.kind for rule in rule_set.rules}
    assert {"aggregate", "sequence", "absence", "ancestor", "integrity"} <= kinds
    first = RuleEvaluator(rule_set)
    first.evaluate(fleet_records(1500, agents=5, seed=3))
    snapshot = first.snapshot()
    rules = json.loads(snapshot)["rules"]
    assert any(state.get("traces") for state in rules.values())
    assert any(state.get("pending") for state in rules.values())
    assert any(state.get("streams") for state in rules.values())
    second = RuleEvaluator(rule_set)
    second.restore(snapshot)
    assert second.snapshot() == snapshot


def _chain(seqs: list[int], broken: int | None = None) -> list[tuple[dict[str, object], str]]:
    return [({"seq": s, "prev_hash": "" if s == 0 else ("bad" if s == broken else f"h{s - 1}")}, f"h{s}")
            for s in seqs]


def test_the_cursor_finds_what_verify_stream_finds() -> None:
    events = _chain([0, 1, 3, 2, 3, 4], broken=4)
    found = verify_stream("s", events)
    assert [v.kind for v in found] == ["gap", "reorder", "duplicate", "hash_mismatch"]


def test_a_cursor_started_mid_stream_expects_nothing_of_its_first_event() -> None:
    cursor = ChainCursor()
    assert cursor.step("s", {"seq": 40, "prev_hash": "h39"}, "h40") == []
    assert [v.kind for v in cursor.step("s", {"seq": 42, "prev_hash": "h41"}, "h42")] == ["gap"]


def test_an_unknown_hash_is_not_compared() -> None:
    cursor = ChainCursor(1, "")
    assert cursor.step("s", {"seq": 1, "prev_hash": "anything"}, "h1") == []
    assert cursor.step("s", {"seq": 2, "prev_hash": "other"}, "") == []
    assert [v.kind for v in ChainCursor(0).step("s", {"seq": 0, "prev_hash": "x"}, "h0")] == ["bad_start"]
