"""Decoded records to Arrow tables shaped like the ClickHouse tables (schemas/ddl/0001_base.sql).

One list comprehension per column is the allocation-light way to pivot dicts into
columns in CPython; the explicit schema spares pyarrow type inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from agentaudit.schemas import Incident, Severity

__all__ = [
    "ACTIONS_SCHEMA", "INCIDENTS_SCHEMA", "LIFECYCLE_SCHEMA", "actions_table", "incident_records_table",
    "incidents_table", "lifecycle_table",
]

_STR = pa.string()
_TS = pa.timestamp("us", tz="UTC")
_MAP = pa.map_(pa.string(), pa.string())
_STRS = pa.list_(pa.string())

ACTIONS_SCHEMA = pa.schema(
    [
        ("event_id", _STR), ("tenant", _STR), ("agent_id", _STR), ("agent_version", _STR),
        ("run_id", _STR), ("trace_id", _STR), ("action_id", _STR), ("parent_action_id", _STR),
        ("links", _STRS), ("depth", pa.uint16()), ("stream_id", _STR), ("seq", pa.uint64()),
        ("prev_hash", _STR), ("event_hash", _STR), ("kind", _STR), ("name", _STR), ("phase", _STR),
        ("status", _STR), ("error_type", _STR), ("error_message", _STR), ("actor_type", _STR),
        ("actor_id", _STR), ("model", _STR), ("input_tokens", pa.uint64()), ("output_tokens", pa.uint64()),
        ("cost_usd", pa.float64()), ("latency_us", pa.uint64()), ("start_time", _TS), ("end_time", _TS),
        ("event_time", _TS), ("input_digest", _STR), ("output_digest", _STR), ("input_body", _STR),
        ("output_body", _STR), ("payload_bytes", pa.uint64()), ("attributes", _MAP), ("environment", _STR),
        ("kafka_partition", pa.uint16()), ("kafka_offset", pa.uint64()), ("later_copy", pa.uint8()),
        ("signature", _STR),
    ]
)

# Columns copied as they are, and nullable strings that the store keeps as ''.
_PLAIN = (
    "event_id", "tenant", "agent_id", "agent_version", "run_id", "trace_id", "action_id", "links", "depth",
    "stream_id", "seq", "prev_hash", "event_hash", "kind", "name", "phase", "status", "input_tokens",
    "output_tokens", "cost_usd", "latency_us", "payload_bytes", "attributes", "environment",
)
_NULLABLE_STR = (
    "parent_action_id", "error_type", "error_message", "model", "input_digest", "output_digest",
    "input_body", "output_body",
)


def actions_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    """The ``actions`` rows for decoded action records carrying ``event_hash``, ``_partition``, ``_offset``."""
    columns: dict[str, list[Any]] = {name: [r[name] for r in records] for name in _PLAIN}
    for name in _NULLABLE_STR:
        columns[name] = [r[name] or "" for r in records]
    columns["actor_type"] = [r["actor"]["type"] for r in records]
    columns["actor_id"] = [r["actor"]["id"] for r in records]
    columns["start_time"] = [r["start_time_us"] for r in records]
    columns["end_time"] = [r["end_time_us"] for r in records]
    columns["event_time"] = [r["event_time_us"] for r in records]
    columns["kafka_partition"] = [r["_partition"] for r in records]
    columns["kafka_offset"] = [r["_offset"] for r in records]
    columns["later_copy"] = [r.get("later_copy", 0) for r in records]  # set by the sink (Sink._mark_later_copies)
    columns["signature"] = [r.get("signature", "") for r in records]  # set by the sink (Sink._mark_signatures)
    return pa.Table.from_pydict(columns, schema=ACTIONS_SCHEMA)


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
