"""Decoded records to Arrow tables shaped like the ClickHouse tables (schemas/ddl/0001_base.sql).

One list comprehension per column is the allocation-light way to pivot dicts into
columns in CPython; the explicit schema spares pyarrow type inference.

Hashes travel as hex everywhere but on disk: :data:`ACTIONS_SCHEMA` is the row as readers see it (the
store's ``prev_hash``, ``event_hash``, ``input_digest`` and ``output_digest`` are ALIAS columns that give
the hex back), :data:`STORED_ACTIONS_SCHEMA` what the table takes: 32 raw bytes per hash, half the hex and
incompressible either way, plus the verbatim text of a value that is not lowercase SHA-256 hex.
"""

from __future__ import annotations

import binascii
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from agentaudit.schemas import ACTION_LEAVES, ActionField, Incident, Severity

__all__ = [
    "ACTIONS_SCHEMA", "HASH_COLUMNS", "INCIDENTS_SCHEMA", "LIFECYCLE_SCHEMA", "STORED_ACTIONS_SCHEMA", "actions_hex_table",
    "actions_schema", "actions_table", "column_reads", "incident_records_table", "incidents_table", "lifecycle_table",
    "stored_actions", "stored_actions_schema",
]

_STR = pa.string()
_TS = pa.timestamp("us", tz="UTC")
_MAP = pa.map_(pa.string(), pa.string())
_STRS = pa.list_(pa.string())

# The actions columns derive from the action schema's fields (schemas/action_fields.py), in its order: a nested
# record's leaves by their flat names (actor_type), an epoch-microsecond `<x>_time_us` as the timestamp `<x>_time`,
# the sink's `event_hash` after `prev_hash`, and the sink's own columns last. Computed once, at import.
_ARROW_TYPES = {"string": _STR, "enum": _STR, "int": pa.uint16(), "long": pa.uint64(), "double": pa.float64(),
                "array": _STRS, "map": _MAP}
_TIME_SUFFIX = "_time_us"


def _column(name: str) -> str:
    return sys.intern(name[:-3]) if name.endswith(_TIME_SUFFIX) else name


def actions_schema(leaves: Sequence[ActionField] = ACTION_LEAVES) -> pa.Schema:
    """The ``actions`` table's Arrow schema for the action schema's ``leaves``."""
    fields: list[tuple[str, pa.DataType]] = []
    for leaf in leaves:
        fields.append((_column(leaf.name), _TS if leaf.name.endswith(_TIME_SUFFIX) else _ARROW_TYPES[leaf.type]))
        if leaf.name == "prev_hash":
            fields.append(("event_hash", _STR))
    fields += [("kafka_partition", pa.uint16()), ("kafka_offset", pa.uint64()), ("later_copy", pa.uint8()),
               ("signature", _STR)]
    return pa.schema(fields)


ACTIONS_SCHEMA = actions_schema()

def column_reads(leaves: Sequence[ActionField] = ACTION_LEAVES) -> tuple[
        tuple[tuple[str, str], ...], tuple[str, ...], tuple[tuple[str, str, str], ...]]:
    """How :func:`actions_table` reads each column of the schema's ``leaves``: ``(column, record key)`` for
    values copied as they are (times renamed, the sink's event_hash too), the nullable strings the store keeps
    as '', and ``(column, outer key, inner key)`` for nested leaves. A comprehension per column over interned
    keys, as these are, costs what the hand-written one did."""
    copied = (*((_column(leaf.name), leaf.name) for leaf in leaves
                if len(leaf.path) == 1 and not (leaf.type == "string" and leaf.nullable)), ("event_hash", "event_hash"))
    nullable = tuple(leaf.name for leaf in leaves if len(leaf.path) == 1 and leaf.type == "string" and leaf.nullable)
    nested = tuple((leaf.name, leaf.path[0], leaf.path[1]) for leaf in leaves if len(leaf.path) == 2)
    return copied, nullable, nested


_COPIED, _NULLABLE_STR, _NESTED = column_reads()


def actions_hex_table(records: Sequence[dict[str, Any]], *, partitions: Sequence[int] | None = None,
                      offsets: Sequence[int] | None = None) -> pa.Table:
    """The ``actions`` rows as readers see them (:data:`ACTIONS_SCHEMA`, hashes in hex) for decoded action
    records carrying ``event_hash``; :func:`actions_table` gives what the store takes.

    :param partitions: each record's Kafka partition, default the records' ``_partition`` (rows read back
        from the store); the sink passes its envelopes' positions.
    :param offsets: each record's Kafka offset, likewise (default ``_offset``).
    """
    columns: dict[str, list[Any]] = {column: [r[key] for r in records] for column, key in _COPIED}
    for name in _NULLABLE_STR:
        columns[name] = [r[name] or "" for r in records]
    for name, outer, inner in _NESTED:
        columns[name] = [r[outer][inner] for r in records]
    columns["kafka_partition"] = list(partitions) if partitions is not None else [r["_partition"] for r in records]
    columns["kafka_offset"] = list(offsets) if offsets is not None else [r["_offset"] for r in records]
    columns["later_copy"] = [r.get("later_copy", 0) for r in records]  # set by the sink (Sink._mark_later_copies)
    columns["signature"] = [r.get("signature", "") for r in records]  # set by the sink (Sink._mark_signatures)
    return pa.Table.from_pydict(columns, schema=ACTIONS_SCHEMA)


def actions_table(records: Sequence[dict[str, Any]], *, partitions: Sequence[int] | None = None,
                  offsets: Sequence[int] | None = None) -> pa.Table:
    """The ``actions`` rows to insert (:data:`STORED_ACTIONS_SCHEMA`) for decoded action records carrying
    ``event_hash``; the arguments are :func:`actions_hex_table`'s."""
    return stored_actions(actions_hex_table(records, partitions=partitions, offsets=offsets))


#: The hex columns stored as bytes: ``name -> whether a value that is not lowercase SHA-256 hex is kept verbatim``
#: in ``<name>_text`` (producer-supplied values) or refused (``event_hash``, which the sink computes).
HASH_COLUMNS = {"prev_hash": True, "event_hash": False, "input_digest": True, "output_digest": True}
_HASH_BYTES = 32
_BIN = pa.binary(_HASH_BYTES)
_HEX = "^[0-9a-f]{64}$"
_ZERO_HEX = "0" * 2 * _HASH_BYTES


def stored_actions_schema(schema: pa.Schema = ACTIONS_SCHEMA) -> pa.Schema:
    """``schema`` (the rows as read) with each hash column as ``<name>_bin`` bytes (and ``<name>_text``)."""
    fields: list[pa.Field] = []
    for field in schema:
        if field.name in HASH_COLUMNS:
            fields.append(pa.field(f"{field.name}_bin", _BIN))
            if HASH_COLUMNS[field.name]:
                fields.append(pa.field(f"{field.name}_text", _STR))
        else:
            fields.append(field)
    return pa.schema(fields)


STORED_ACTIONS_SCHEMA = stored_actions_schema()


def stored_actions(table: pa.Table) -> pa.Table:
    """Rows as read (hex hashes, :data:`ACTIONS_SCHEMA`) to the stored layout, a column at a time.

    A lowercase 64-digit hex value other than all zeros becomes its 32 bytes; anything else (empty, ``None``,
    a producer's own digest format) is all-zero bytes plus the text verbatim, so every value reads back as
    it was written. ``event_hash`` must be hex or empty: the sink computes it.

    :raises ValueError: an ``event_hash`` that is not SHA-256 hex.
    """
    columns: list[pa.Array | pa.ChunkedArray] = []
    names: list[str] = []
    for name in table.column_names:
        column = table.column(name)
        if name not in HASH_COLUMNS:
            columns.append(column)
            names.append(name)
            continue
        binary, text = _split_hex(column, keep_text=HASH_COLUMNS[name])
        if not HASH_COLUMNS[name] and pc.any(pc.not_equal(text, "")).as_py():
            bad = pc.filter(text, pc.not_equal(text, ""))[0].as_py()
            raise ValueError(f"actions.{name} must be 64 lowercase hex digits or empty, got {bad[:80]!r}")
        columns.append(binary)
        names.append(f"{name}_bin")
        if HASH_COLUMNS[name]:
            columns.append(text)
            names.append(f"{name}_text")
    return pa.Table.from_arrays(columns, schema=stored_actions_schema(table.schema))


def _split_hex(column: pa.Array | pa.ChunkedArray, *, keep_text: bool) -> tuple[pa.Array, pa.Array]:
    """``(32-byte values, verbatim text of the others)``: one regex pass and one unhexlify per column."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = pc.fill_null(values.cast(_STR), "")
    hexed = pc.match_substring_regex(values, _HEX)
    canonical = pc.and_(hexed, pc.not_equal(values, _ZERO_HEX)) if keep_text else hexed
    out = np.zeros((len(values), _HASH_BYTES), dtype=np.uint8)
    good = pc.filter(values, canonical)
    if len(good):
        offsets = np.frombuffer(good.buffers()[1], dtype=np.int32, count=len(good) + 1, offset=4 * good.offset)
        data = good.buffers()[2]
        assert data is not None  # noqa: S101 - narrows the Optional: a non-empty string array has a data buffer
        hexes = memoryview(data)[offsets[0]:offsets[-1]]
        out[canonical.to_numpy(zero_copy_only=False)] = np.frombuffer(binascii.unhexlify(hexes), dtype=np.uint8
                                                                       ).reshape(-1, _HASH_BYTES)
    binary = pa.FixedSizeBinaryArray.from_buffers(_BIN, len(values), [None, pa.py_buffer(out)])
    text = pc.if_else(canonical, "", values)
    return binary, text


INCIDENTS_SCHEMA = pa.schema(
    [
        ("incident_id", _STR), ("tenant", _STR), ("rule_id", _STR), ("rule_revision", _STR), ("severity", _STR),
        ("severity_rank", pa.uint8()), ("mode", _STR), ("owner", _STR), ("key", _STR), ("window_start", _TS),
        ("window_end", _TS), ("agent_id", _STR), ("trace_id", _STR), ("event_ids", _STRS), ("first_seen", _TS),
        ("last_seen", _TS), ("count", pa.uint64()), ("summary", _STR), ("tags", _STRS), ("attributes", _MAP),
    ]
)


def incidents_table(incidents: Sequence[Incident]) -> pa.Table:
    """The ``incidents`` rows for incidents returned by an evaluator."""
    rows = [
        {
            "incident_id": i.incident_id, "tenant": i.tenant, "rule_id": i.rule_id, "rule_revision": i.rule_revision,
            "severity": str(i.severity), "severity_rank": Severity(i.severity).rank, "mode": str(i.mode),
            "owner": i.owner, "key": i.key, "window_start": i.window_start_us, "window_end": i.window_end_us,
            "agent_id": i.agent_id, "trace_id": i.trace_id, "event_ids": list(i.event_ids),
            "first_seen": i.first_seen_us, "last_seen": i.last_seen_us, "count": i.count, "summary": i.summary,
            "tags": list(i.tags), "attributes": dict(i.attributes),
        }
        for i in incidents
    ]
    return pa.Table.from_pylist(rows, schema=INCIDENTS_SCHEMA)


_SEVERITY_RANK = {str(s): s.rank for s in Severity}
_INCIDENT_PLAIN = (
    "incident_id", "tenant", "rule_id", "rule_revision", "severity", "mode", "owner", "key", "agent_id",
    "trace_id", "event_ids", "count", "summary", "tags", "attributes",
)


def incident_records_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    """The ``incidents`` rows for decoded Avro incident records (as ``agentaudit rules run`` publishes them).

    Same rows as :func:`incidents_table` gives for the same incidents; built column by column.
    """
    columns: dict[str, list[Any]] = {name: [r[name] for r in records] for name in _INCIDENT_PLAIN}
    columns["severity_rank"] = [_SEVERITY_RANK[s] for s in columns["severity"]]
    columns["window_start"] = [r["window_start_us"] for r in records]
    columns["window_end"] = [r["window_end_us"] for r in records]
    columns["first_seen"] = [r["first_seen_us"] for r in records]
    columns["last_seen"] = [r["last_seen_us"] for r in records]
    return pa.Table.from_pydict(columns, schema=INCIDENTS_SCHEMA)


LIFECYCLE_SCHEMA = pa.schema(
    [
        ("event_id", _STR), ("incident_id", _STR), ("tenant", _STR), ("type", _STR), ("actor_type", _STR),
        ("actor_id", _STR), ("assignee", _STR), ("note", _STR), ("at", _TS), ("attributes", _MAP),
    ]
)


def lifecycle_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    """The ``incident_lifecycle`` rows for decoded lifecycle records."""
    rows = [
        {
            "event_id": r["event_id"], "incident_id": r["incident_id"], "tenant": r["tenant"], "type": r["type"],
            "actor_type": r["actor"]["type"], "actor_id": r["actor"]["id"], "assignee": r["assignee"] or "",
            "note": r["note"] or "", "at": r["at_us"], "attributes": r["attributes"],
        }
        for r in records
    ]
    return pa.Table.from_pylist(rows, schema=LIFECYCLE_SCHEMA)
