"""The default pack on conversation-mode runs (issue 13 item 4): silent on ordinary agent loops, and each
injected policy breach found by its rule in its trace, with nothing else firing."""

from __future__ import annotations

from collections import Counter

import pytest

from agentaudit.producers.simulator.conversation import (
    BREACH_ATTRIBUTE,
    BREACH_KINDS,
    EXPECTED_RULES,
    conversation_runs,
)
from agentaudit.rules import RuleEvaluator, load_rule_set
from agentaudit.rules.harness import replay
from agentaudit.schemas import AvroCodec

PACK = load_rule_set(None)


def judge(records: list[dict], batch_size: int = 2_000) -> list:
    return replay(RuleEvaluator(PACK), records, batch_size=batch_size)


@pytest.fixture(scope="module")
def clean():
    return conversation_runs(1000, seed=11)


@pytest.fixture(scope="module")
def breached():
    return conversation_runs(1000, seed=5, breach_rate=0.2)


@pytest.fixture(scope="module")
def breached_incidents(breached):
    return judge(breached.records)


def test_a_clean_corpus_of_1000_conversations_raises_nothing(clean) -> None:
    assert judge(clean.records) == []


def test_the_clean_corpus_holds_what_used_to_misfire(clean) -> None:
    """Long sequential loops, failures with and without an error type, retries, refusals and confirmations."""
    records = clean.records
    assert sum(r["kind"] == "invoke_agent" and r["phase"] == "start" for r in records) == 1000
    tool_calls = Counter(r["trace_id"] for r in records if r["kind"] == "execute_tool" and r["phase"] == "start")
    assert max(tool_calls.values()) >= 23  # 23+ sequential calls under one root: the old fan-out misfire
    assert sum(n >= 20 for n in tool_calls.values()) >= 20
    failed = [r for r in records if r["phase"] == "end" and r["status"] == "error"]
    assert any(r["error_type"] is None for r in failed) and any(r["error_type"] for r in failed)
    retried = Counter((r["trace_id"], r["name"], r["attributes"]["args_hash"]) for r in records
                      if r["kind"] == "execute_tool" and r["phase"] == "start")
    assert max(retried.values()) == 2  # a failed lookup retried once with the same arguments
    intents = Counter(r["attributes"].get("intent") for r in records if r["kind"] == "message")
    assert intents["confirm"] > 500 and intents["refuse"] > 50 and intents["propose"] > 1000
    approvals = [r for r in records if r["kind"] == "approval"]
    assert len(approvals) == intents["confirm"]
    assert all(r["actor"]["type"] == "human" and r["attributes"]["args_hash"] for r in approvals)
    assert not any(BREACH_ATTRIBUTE in r["attributes"] for r in records)
    span_h = (records[-1]["event_time_us"] - records[0]["event_time_us"]) / 3.6e9
    assert 6 < span_h < 11  # runs start about every 30 s, as a real desk's would


def _tagged(corpus) -> dict[str, tuple[str, str]]:
    return {r["event_id"]: (r["attributes"][BREACH_ATTRIBUTE], r["trace_id"]) for r in corpus.records
            if BREACH_ATTRIBUTE in r["attributes"]}


def test_every_injected_breach_is_found_by_its_rule_in_its_trace(breached, breached_incidents) -> None:
    kinds = Counter(b.kind for b in breached.breaches)
    assert set(kinds) == set(BREACH_KINDS) and min(kinds.values()) >= 20
    incidents = breached_incidents
    missed = [b for b in breached.breaches
              if not any(i.rule_id == EXPECTED_RULES[b.kind][0]
                         and (i.trace_id == b.trace_id or b.event_id in i.event_ids) for i in incidents)]
    assert missed == []


def test_nothing_but_the_breaches_fires(breached, breached_incidents) -> None:
    tagged = _tagged(breached)
    by_trace = {b.trace_id: b.kind for b in breached.breaches}
    stray = []
    for incident in breached_incidents:
        causes = {by_trace.get(incident.trace_id)} | {tagged[e][0] for e in incident.event_ids if e in tagged}
        if not any(kind and incident.rule_id in EXPECTED_RULES[kind] for kind in causes):
            stray.append((incident.rule_id, incident.key, incident.summary))
    assert stray == []


def test_the_same_breaches_are_found_whatever_the_batch_size(breached, breached_incidents) -> None:
    found = {(i.rule_id, i.trace_id) for i in judge(breached.records, 97)}
    assert found == {(i.rule_id, i.trace_id) for i in breached_incidents}


def test_each_write_needs_its_own_yes() -> None:
    """Two writes after one "yes": the second is unapproved (the approval was used), the first is not."""
    corpus = conversation_runs(300, seed=2, breach_rate=0.3)
    doubles = [b for b in corpus.breaches if b.kind == "double_write"]
    assert doubles
    incidents = [i for i in judge(corpus.records) if i.rule_id == "security.unapproved-consequential-action"]
    for breach in doubles:
        (incident,) = [i for i in incidents if i.trace_id == breach.trace_id]
        assert incident.count == 1 and incident.event_ids == (breach.event_id,)
        assert "already used" in incident.summary


def test_incident_text_reads_cleanly_when_an_error_has_no_type(breached, breached_incidents) -> None:
    incidents = breached_incidents
    loops = [i for i in incidents if i.rule_id == "autonomy.tool-loop"]
    untyped = {r["trace_id"] for r in breached.records
               if r["attributes"].get(BREACH_ATTRIBUTE) == "tool_loop" and r["phase"] == "end" and not r["error_type"]}
    assert untyped and any(i.trace_id in untyped for i in loops)
    for incident in incidents:
        assert "None" not in incident.summary and ": )" not in incident.summary and "()" not in incident.summary


def test_records_are_sealed_streams_that_encode_and_repeat() -> None:
    first, again = conversation_runs(30, seed=4, breach_rate=0.5), conversation_runs(30, seed=4, breach_rate=0.5)
    assert first.records == again.records and first.breaches == again.breaches
    codec = AvroCodec("action")
    seqs: dict[str, int] = {}
    for (key, value, record) in first.events():
        assert key.decode() == record["stream_id"] and record["seq"] == seqs.get(record["stream_id"], -1) + 1
        seqs[record["stream_id"]] = record["seq"]
        assert codec.decode(value)["event_id"] == record["event_id"]
    times = [r["event_time_us"] for r in first.records]
    assert times == sorted(times)
    assert conversation_runs(30, seed=5).records[0]["event_id"] != first.records[0]["event_id"]
