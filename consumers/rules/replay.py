"""Deterministic replay: re-run any rule revision over a recorded range of the actions table.

The recorded log is read back in event-time order (each stream keeping its seq order),
rebuilt into the records the sink hands an evaluator, and judged by a fresh evaluator that
closes every window at the end. Same rows + same rules -> the same incidents, byte for byte.

>>> incidents = replay_range(store, ["rules/"], start_us=t0, end_us=t1)
>>> appeared, vanished = diff_incidents(old, new)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from agentaudit.consumers.exceptions import RuleError
from agentaudit.consumers.rules.evaluator import DEFAULT_LATENESS_US, RuleEvaluator, load_rule_set
from agentaudit.schemas import Incident

__all__ = ["diff_incidents", "parse_time", "read_actions", "replay_range", "write_incidents"]

_NULLABLE = ("parent_action_id", "error_type", "error_message", "model", "input_digest", "output_digest",
             "input_body", "output_body")
_COLUMNS = (
    "event_id, tenant, agent_id, agent_version, run_id, trace_id, action_id, parent_action_id, links, depth, "
    "stream_id, seq, prev_hash, event_hash, kind, name, phase, status, error_type, error_message, actor_type, "
    "actor_id, model, input_tokens, output_tokens, cost_usd, latency_us, toUnixTimestamp64Micro(start_time), "
    "if(isNull(end_time), NULL, toUnixTimestamp64Micro(assumeNotNull(end_time))), toUnixTimestamp64Micro(event_time), "
    "input_digest, output_digest, input_body, output_body, payload_bytes, attributes, environment, "
    "kafka_partition, kafka_offset"
)
_NAMES = [c.strip() for c in """event_id tenant agent_id agent_version run_id trace_id action_id parent_action_id links
    depth stream_id seq prev_hash event_hash kind name phase status error_type error_message actor_type actor_id model
    input_tokens output_tokens cost_usd latency_us start_time_us end_time_us event_time_us input_digest output_digest
    input_body output_body payload_bytes attributes environment _partition _offset""".split()]


def parse_time(text: str) -> int:
    """Epoch microseconds from an ISO 8601 time (UTC if no zone) or an integer of epoch microseconds."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise RuleError(f"bad time {text!r}; use ISO 8601 (2026-01-01T00:00:00Z) or epoch microseconds") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _record(row: Sequence[Any]) -> dict[str, Any]:
    rec = dict(zip(_NAMES, row))
    rec["actor"] = {"type": rec.pop("actor_type"), "id": rec.pop("actor_id")}
    for name in _NULLABLE:
        if rec[name] == "":
            rec[name] = None
    rec["links"] = list(rec["links"])
    rec["attributes"] = dict(rec["attributes"])
    rec["depth"] = int(rec["depth"])
    return rec


def read_actions(store: Any, *, start_us: int | None = None, end_us: int | None = None,
                 tenant: str | None = None, batch_size: int = 10_000) -> Iterator[list[dict[str, Any]]]:
    """Recorded action records in ``[start_us, end_us)``, in (event time, stream, seq) order, in batches."""
    where = ["1"]
    params: dict[str, Any] = {}
    if start_us is not None:
        where.append("event_time >= fromUnixTimestamp64Micro({start:Int64}, 'UTC')")
        params["start"] = start_us
    if end_us is not None:
        where.append("event_time < fromUnixTimestamp64Micro({end:Int64}, 'UTC')")
        params["end"] = end_us
    if tenant is not None:
        where.append("tenant = {tenant:String}")
        params["tenant"] = tenant
    last: tuple[int, str, int] | None = None
    while True:
        page = list(where)
        if last is not None:
            page.append("(toUnixTimestamp64Micro(event_time), stream_id, seq) > ({lt:Int64}, {ls:String}, {lq:UInt64})")
            params.update(lt=last[0], ls=last[1], lq=last[2])
        rows = store.query(
            f"SELECT {_COLUMNS} FROM actions FINAL WHERE {' AND '.join(page)} "
            f"ORDER BY event_time, stream_id, seq LIMIT {int(batch_size)}", params).rows
        if not rows:
            return
        batch = [_record(row) for row in rows]
        yield batch
        tail = batch[-1]
        last = (tail["event_time_us"], tail["stream_id"], tail["seq"])
        if len(rows) < batch_size:
            return


def replay_range(store: Any, rule_paths: str | Sequence[str] | None, *, start_us: int | None = None,
                 end_us: int | None = None, owners_path: str | None = None,
                 lateness_us: int = DEFAULT_LATENESS_US) -> list[Incident]:
    """The final incidents of ``rule_paths`` over the recorded range, sorted by incident id."""
    owners = None
    if owners_path:
        from agentaudit.consumers.owners import load_owners

        owners = load_owners(owners_path)
    evaluator = RuleEvaluator(load_rule_set(rule_paths), owners=owners, lateness_us=lateness_us)
    final: dict[str, Incident] = {}
    for batch in read_actions(store, start_us=start_us, end_us=end_us):
        for incident in evaluator.evaluate(batch):
            final[incident.incident_id] = incident
    for incident in evaluator.flush():
        final[incident.incident_id] = incident
    return [final[k] for k in sorted(final)]


def write_incidents(store: Any, incidents: Sequence[Incident]) -> int:
    """Insert incidents into the store's ``incidents`` table; returns how many."""
    from agentaudit.consumers._columns import incidents_table

    if incidents:
        store.insert_arrow("incidents", incidents_table(incidents))
    return len(incidents)


def _identity(incident: Incident) -> tuple[str, str, str, int]:
    return (incident.rule_id, incident.tenant, incident.key, incident.window_start_us)


def diff_incidents(old: Sequence[Incident], new: Sequence[Incident]) -> tuple[list[Incident], list[Incident]]:
    """Incidents that appear with ``new`` and vanish from ``old``, matched by rule, tenant, key and window
    (ids differ between revisions by design)."""
    old_ids = {_identity(i) for i in old}
    new_ids = {_identity(i) for i in new}
    appeared = sorted((i for i in new if _identity(i) not in old_ids), key=_identity)
    vanished = sorted((i for i in old if _identity(i) not in new_ids), key=_identity)
    return appeared, vanished
