"""Built-in rules, record-to-column conversion and sink settings: pure logic."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from agentaudit.consumers._columns import (
    ACTIONS_SCHEMA,
    STORED_ACTIONS_SCHEMA,
    actions_hex_table,
    actions_table,
    incident_records_table,
    incidents_table,
    lifecycle_table,
    stored_actions,
)
from agentaudit.consumers.exceptions import ConsumerError
from agentaudit.consumers.settings import SinkSettings
from agentaudit.exceptions import AgentAuditError
from agentaudit.rules.builtin import RULE_COST, RULE_ERROR, RULE_FORBIDDEN_TOOL, BuiltinEvaluator
from agentaudit.rules.exceptions import RuleEngineError, RuleError
from agentaudit.schemas import AvroCodec, frame_body
from tests.sink_support import action_record, framed_events


def _enrich(records):
    for offset, record in enumerate(records):
        record.update(event_hash="h" * 64, _partition=0, _offset=offset)
    return records


def test_builtin_rules_flag_each_condition_once():
    evaluator = BuiltinEvaluator(forbidden_tools=["shell.exec"], cost_threshold_usd=0.5)
    records = _enrich(
        [
            action_record(1),
            action_record(2, name="shell.exec"),
            action_record(3, cost_usd=2.5, kind="chat", name="gpt"),
            action_record(4, status="error", error_type="Timeout"),
            action_record(5, name="shell.exec", kind="chat"),  # not a tool call
        ]
    )
    incidents = evaluator.evaluate(records)
    by_rule = {i.rule_id: i for i in incidents}
    assert sorted(by_rule) == sorted([RULE_FORBIDDEN_TOOL, RULE_COST, RULE_ERROR])
    assert by_rule[RULE_FORBIDDEN_TOOL].event_ids == (records[1]["event_id"],)
    assert by_rule[RULE_COST].key == "action-3"
    assert "Timeout" in by_rule[RULE_ERROR].summary
    assert all(i.rule_revision == evaluator.revision for i in incidents)


def test_builtin_incident_ids_are_deterministic_and_fold_per_action():
    make = lambda: BuiltinEvaluator(forbidden_tools=["rm"])  # noqa: E731 - a factory, named for the runs below
    start = action_record(7, name="rm", phase="start")
    end = action_record(7, name="rm", phase="end")
    first = make().evaluate(_enrich([start, end]))
    again = make().evaluate(_enrich([dict(start), dict(end)]))
    assert len(first) == 1 and first[0].count == 2
    assert [i.incident_id for i in first] == [i.incident_id for i in again]
    assert BuiltinEvaluator(forbidden_tools=["rm", "x"]).revision != make().revision


def test_actions_table_matches_ddl_columns_and_maps_nulls():
    pairs = framed_events(3, parent_action_id=None, model="gpt-4o")
    codec = AvroCodec("action")
    records = [codec.decode(data) for _, data in pairs]
    for offset, (record, (_, data)) in enumerate(zip(records, pairs, strict=False)):
        record.update(event_hash=hashlib.sha256(frame_body(data)).hexdigest(), _partition=2, _offset=100 + offset)
    table = actions_hex_table(records)
    assert table.schema == ACTIONS_SCHEMA
    stored = actions_table(records)
    assert stored.schema == STORED_ACTIONS_SCHEMA
    binary = stored.column("event_hash_bin").to_pylist()
    assert [b.hex() for b in binary] == [r["event_hash"] for r in records]
    assert stored.column("prev_hash_bin")[1].as_py() == binary[0] and stored.column("prev_hash_text")[1].as_py() == ""
    rows = table.to_pylist()
    assert [r["event_id"] for r in rows] == [r["event_id"] for r in records]
    assert rows[0]["parent_action_id"] == "" and rows[0]["model"] == "gpt-4o"
    assert rows[1]["prev_hash"] == rows[0]["event_hash"]  # the chain links the body hashes the sink computes
    assert rows[2]["kafka_offset"] == 102 and rows[2]["kafka_partition"] == 2
    assert rows[0]["actor_type"] == "agent" and rows[0]["attributes"] == [("k", "v")]
    assert int(table.column("event_time")[0].value) == records[0]["event_time_us"]


def test_incident_and_lifecycle_tables():
    incidents = BuiltinEvaluator(cost_threshold_usd=0.0).evaluate(_enrich([action_record(1)]))
    table = incidents_table(incidents)
    assert table.num_rows == 1 and table.column("severity_rank")[0].as_py() == 2
    lifecycle = lifecycle_table(
        [
            {"event_id": "e", "incident_id": "i", "tenant": "t", "type": "acknowledged",
             "actor": {"type": "human", "id": "ann"}, "assignee": None, "note": None, "at_us": 1, "attributes": {}}
        ]
    )
    assert lifecycle.to_pylist()[0]["actor_id"] == "ann"


def test_published_incident_records_give_the_rows_the_sink_writes_for_its_own_incidents():
    # `consume --no-rules` stores the incidents topic's records; inline mode stores Incident models
    evaluator = BuiltinEvaluator(forbidden_tools=["shell.exec"], cost_threshold_usd=0.0)
    incidents = evaluator.evaluate(_enrich([action_record(1, name="shell.exec", status="error", error_type="E")]))
    assert len(incidents) == 3
    codec = AvroCodec("incident")
    records = [codec.decode(codec.encode(i.to_avro())) for i in incidents]
    assert incident_records_table(records).to_pylist() == incidents_table(incidents).to_pylist()


def test_sink_settings_inline_rules_default_on_and_off_from_env(monkeypatch: pytest.MonkeyPatch):
    assert SinkSettings().inline_rules is True
    monkeypatch.setenv("AGENTAUDIT_SINK_INLINE_RULES", "false")
    assert SinkSettings().inline_rules is False


def test_sink_settings_read_comma_separated_tools(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AGENTAUDIT_SINK_FORBIDDEN_TOOLS", "shell.exec, rm ,")
    monkeypatch.setenv("AGENTAUDIT_SINK_GROUP", "g1")
    settings = SinkSettings()
    assert settings.forbidden_tools == ("shell.exec", "rm") and settings.group == "g1"


def test_rule_error_names_file_line_and_rule():
    error = RuleError("unknown field", file="rules.yaml", line=12, rule="no-shell")
    assert isinstance(error, RuleEngineError) and isinstance(error, AgentAuditError)
    assert not isinstance(error, ConsumerError)  # the engine is its own room
    assert str(error).startswith("rules.yaml:12: rule 'no-shell'") and error.line == 12


def test_stored_actions_keeps_every_hash_value_it_cannot_hold_as_bytes():
    sha = hashlib.sha256(b"body").hexdigest()
    sent = [sha, "", None, "same-input", sha.upper(), "0" * 64, sha[:32]]
    rows = actions_hex_table([action_record(n, event_hash=sha, _partition=0, _offset=n) for n in range(len(sent))]).to_pylist()
    for row, value in zip(rows, sent, strict=True):
        row.update(input_digest=value, event_hash=sha)
    stored = stored_actions(pa.Table.from_pylist(rows, schema=ACTIONS_SCHEMA))
    binary = [b.hex() for b in stored.column("input_digest_bin").to_pylist()]
    text = stored.column("input_digest_text").to_pylist()
    # what the store's ALIAS column gives back: the hex of the bytes, else the text
    assert [t if b == "0" * 64 else b for b, t in zip(binary, text, strict=True)] == [v or "" for v in sent]
    assert binary[0] == sha and text[0] == "" and all(b == "0" * 64 for b in binary[1:])
    assert stored.column("event_hash_bin").to_pylist() == [bytes.fromhex(sha)] * len(sent)
    with pytest.raises(ValueError, match="event_hash must be 64 lowercase hex"):
        stored_actions(pa.Table.from_pylist([dict(rows[0], event_hash="forged")], schema=ACTIONS_SCHEMA))
