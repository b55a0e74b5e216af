"""One definition of the action's fields (schemas/action_fields.py, read from the Avro schema), and the SDK's
records, the sink's columns and the rule engine's fields all derived from it (issue 16)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agentaudit.consumers import _columns
from agentaudit.rules import _fields
from agentaudit.schemas import (
    ACTION_DEFAULTS,
    ACTION_FIELD_NAMES,
    ACTION_FIELDS,
    ACTION_LEAVES,
    ActionEvent,
    ActionKind,
    ActorType,
    Phase,
    Status,
    registry,
)
from agentaudit.schemas.action_fields import action_fields

ROOT = Path(__file__).resolve().parents[2]
#: the columns the sink adds to what an event says
SINK_COLUMNS = {"event_hash", "kafka_partition", "kafka_offset", "later_copy", "signature"}


def _column(name: str) -> str:
    return name.removesuffix("_us") if name.endswith("_time_us") else name


def test_the_fields_are_the_latest_avro_schema_and_the_pydantic_model() -> None:
    raw = json.loads((ROOT / "schemas" / "avro" / f"action.v{registry.latest('action').version}.avsc").read_text())
    assert tuple(f["name"] for f in raw["fields"]) == ACTION_FIELD_NAMES
    assert tuple(ActionEvent.model_fields) == ACTION_FIELD_NAMES
    by_name = {f.name: f for f in ACTION_LEAVES}
    for name, enum in (("kind", ActionKind), ("phase", Phase), ("status", Status), ("actor_type", ActorType)):
        assert set(by_name[name].symbols) == {member.value for member in enum}
    assert by_name["actor_type"].path == ("actor", "type")
    assert by_name["environment"].since == 2 and by_name["event_id"].since == 1


def test_defaults_are_the_schemas_and_required_fields_have_none() -> None:
    assert ACTION_DEFAULTS["status"] == "unset" and ACTION_DEFAULTS["links"] == []
    assert {"event_id", "kind", "phase", "actor", "start_time_us"}.isdisjoint(ACTION_DEFAULTS)
    with pytest.raises(TypeError):
        ACTION_DEFAULTS["status"] = "ok"  # type: ignore[index]  # read-only on purpose, as tested


def test_the_sdk_worker_record_has_every_field_and_shares_no_mutable_default() -> None:
    from agentaudit.producers import _worker
    from agentaudit.producers._queue import QueueEntry

    assert not any(isinstance(v, (list, dict)) for v in _worker._DEFAULTS.values())
    made: list[dict[str, Any]] = []

    class _Chain:
        def __init__(self, stream_id: str) -> None:
            self.stream_id = stream_id

        def seal(self, record: dict[str, Any], codec: Any) -> bytes:
            made.append(record)
            raise ValueError("stop here: the record is what this test reads")

    worker = object.__new__(_worker.Worker)
    worker.__dict__.update(_event_prefix="e" * 24, _event_counter=iter(range(10)), redactor=None, chains={},
                           _unshown=None, _uncovered=None, codec=None, instance_id="i",
                           _static={"tenant": "acme", "agent_version": "1", "environment": "test"},
                           stats={"invalid": 0})
    real = _worker.StreamChain
    _worker.StreamChain = _Chain  # type: ignore[misc, assignment]  # the chain the record reaches
    try:
        for _ in range(2):
            item = QueueEntry("bot", "chat", "start", "n", "a1", None, "t1", 0, "r1", 1_700_000_000_000_000, None, 0)
            assert worker._seal(item) is None
    finally:
        _worker.StreamChain = real  # type: ignore[misc]  # restored
    # every field but the three the chain stamps while sealing (stream_id, seq, prev_hash's real value)
    assert set(made[0]) == set(ACTION_FIELD_NAMES) - {"stream_id", "seq"}
    assert made[0]["links"] is not made[1]["links"] and made[0]["attributes"] is not made[1]["attributes"]


def test_the_sink_columns_are_the_leaves_plus_the_sinks_own() -> None:
    names = _columns.ACTIONS_SCHEMA.names
    assert names[:-4] == [n for leaf in ACTION_LEAVES for n in
                          ([_column(leaf.name), "event_hash"] if leaf.name == "prev_hash" else [_column(leaf.name)])]
    assert set(names) - {_column(leaf.name) for leaf in ACTION_LEAVES} == SINK_COLUMNS


def test_the_sink_columns_are_the_actions_tables_in_the_ddl() -> None:
    # a field added to the schema needs a migration that adds its column (schemas/ddl/)
    ddl = "\n".join(p.read_text() for p in sorted((ROOT / "schemas" / "ddl").glob("*.sql")))
    create = ddl[ddl.index("CREATE TABLE IF NOT EXISTS {database}.actions\n("):]
    columns = set(re.findall(r"^    ([a-z_]+) ", create[:create.index("\n)")], re.MULTILINE))
    columns |= set(re.findall(r"ALTER TABLE \{database\}\.actions ADD COLUMN IF NOT EXISTS (\w+) ", ddl))
    assert columns - set(_columns.STORED_ACTIONS_SCHEMA.names) == {  # the store's own, and the hex of the hashes
        "ingested_at", "first_seen_rank", *_columns.HASH_COLUMNS}
    assert set(_columns.STORED_ACTIONS_SCHEMA.names) <= columns
    aliases = set(re.findall(r"^    ([a-z_]+) +String ALIAS ", create[:create.index("\n)")], re.MULTILINE))
    assert aliases == set(_columns.HASH_COLUMNS)  # every column readers know by name still reads


def test_the_rule_fields_are_the_leaves_plus_derived_ones() -> None:
    schema_fields = {name: f for name, f in _fields.FIELDS.items() if not f.doc}
    assert list(schema_fields) == [leaf.name for leaf in ACTION_LEAVES]
    assert _fields.FIELDS["parent_action_id"].code == "(r['parent_action_id'] or '')"
    assert _fields.FIELDS["latency_us"].code == "(r['latency_us'] or 0)"
    assert _fields.FIELDS["environment"].code == "r.get('environment', '')"  # v1 records have none
    assert _fields.FIELDS["actor_type"].code == "r['actor']['type']"
    assert _fields.FIELDS["kind"].symbols == frozenset(m.value for m in ActionKind)


def test_a_field_added_to_the_schema_reaches_every_derived_user() -> None:
    raw = json.loads(json.dumps(registry.latest("action").raw))
    raw["fields"].append({"name": "region", "type": ["null", "string"], "default": None})
    added = action_fields(raw)[-1]
    assert (added.name, added.type, added.nullable, added.default) == ("region", "string", True, None)
    leaves = (*ACTION_LEAVES, added.__class__(added.name, added.type, added.nullable, added.default,
                                              path=("region",), since=3))
    assert _fields.schema_field(leaves[-1]).code == "(r.get('region', None) or '')"
    assert "region" in _columns.actions_schema(leaves).names
    assert "region" in _columns.column_reads(leaves)[1]


def test_the_parsed_fields_are_the_module_constants() -> None:
    assert tuple(f.name for f in action_fields(registry.latest("action").raw)) == ACTION_FIELD_NAMES
    assert len(ACTION_FIELDS) + 1 == len(ACTION_LEAVES)  # actor becomes actor_type and actor_id


def test_the_sdk_emit_keys_are_schema_fields_or_documented_aliases() -> None:
    from agentaudit.producers import client

    leaves = {leaf.name: leaf for leaf in ACTION_LEAVES}
    aliases = {"agent", "parent", "input", "output", "time_us"}  # emit()'s short names (AuditClient.emit)
    assert client.EMIT_FIELDS - aliases <= set(leaves)
    python_type = {"int": int, "long": int, "double": float, "string": str}
    assert {name: python_type[leaves[name].type] for name in client._EMIT_CASTS} == client._EMIT_CASTS
