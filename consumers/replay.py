"""Deterministic replay: re-run any rule revision over a recorded range of the actions table.

The recorded log is read back in event-time order, each stream keeping its seq order (an event
waits for its stream's earlier seqs, as it did in the live log; see ``_stream_order``),
rebuilt into the records the sink hands an evaluator, and judged by a fresh evaluator that
closes every window at the end. Same rows + same rules -> the same incidents, byte for byte.

A range is bounded by event time, by Kafka position (the ``kafka_partition`` and
``kafka_offset`` the sink recorded for each event, see :func:`parse_bound`), or both; every
bound given applies. An event stored twice with the same body (redelivered to the sink) counts
once, at the position of the copy the table keeps (``FINAL``: the first written, which is also
the one that survives merges), so the answer does not depend on when ClickHouse merges. A copy
with another body under the same event id is stored beside the first and read right after it
(ties in event time, stream and seq go by first seen), so the evaluator judges the first-seen
copy and raises ``integrity.conflicting-duplicate`` for the later one, as it did live.

>>> incidents = replay_range(store, ["rules/"], start_us=t0, end_us=t1)
>>> incidents = replay_range(store, None, **parse_range("0:1200,1:900", "all:5000"))
>>> appeared, vanished = diff_incidents(old, new)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from agentaudit.consumers._stream_order import in_stream_order
from agentaudit.rules._bounds import Offsets, offsets_sql, parse_bound, parse_time
from agentaudit.rules.evaluator import DEFAULT_LATENESS_US, RuleEvaluator, load_rule_set
from agentaudit.rules.exceptions import RuleError
from agentaudit.schemas import Incident

__all__ = ["Offsets", "diff_incidents", "parse_bound", "parse_range", "parse_time", "read_actions", "replay_range",
           "write_incidents"]

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
    input_body output_body payload_bytes attributes environment _partition _offset""".split()]  # noqa: SIM905 - the column list reads best as words


def parse_range(start: str | None, end: str | None) -> dict[str, Any]:
    """Keyword arguments of :func:`replay_range` for the ``--from``/``--to`` texts (None: unbounded).

    Each end is a time or offsets (:func:`parse_bound`), independently of the other.
    """
    out: dict[str, Any] = {"start_us": None, "end_us": None, "start_offsets": None, "end_offsets": None}
    for text, option, side in ((start, "--from", "start"), (end, "--to", "end")):
        if text:
            bound = parse_bound(text, option=option)
            out[f"{side}_offsets" if isinstance(bound, Offsets) else f"{side}_us"] = bound
    return out


def _record(row: Sequence[Any]) -> dict[str, Any]:
    rec = dict(zip(_NAMES, row, strict=False))
    rec["actor"] = {"type": rec.pop("actor_type"), "id": rec.pop("actor_id")}
    for name in _NULLABLE:
        if rec[name] == "":
            rec[name] = None
    rec["links"] = list(rec["links"])
    rec["attributes"] = dict(rec["attributes"])
    rec["depth"] = int(rec["depth"])
    return rec


def read_actions(store: Any, *, start_us: int | None = None, end_us: int | None = None,
                 start_offsets: Offsets | None = None, end_offsets: Offsets | None = None,
                 tenant: str | None = None, batch_size: int = 10_000) -> Iterator[list[dict[str, Any]]]:
    """Recorded action records in ``[start_us, end_us)`` and ``[start_offsets, end_offsets)``, in batches:
    in event-time order, except that each stream keeps its seq order, as in the live log
    (:func:`~agentaudit.consumers._stream_order.in_stream_order`)."""
    where, params = _range_filter(start_us, end_us, start_offsets, end_offsets, tenant)
    first_seq = {str(stream): int(seq) for stream, seq in store.query(
        f"SELECT stream_id, min(seq) FROM actions FINAL WHERE {' AND '.join(where)} GROUP BY stream_id",  # noqa: S608 - the clauses are _range_filter's constant fragments; values go as parameters
        params).rows}
    batch: list[dict[str, Any]] = []
    for record in in_stream_order(_read_by_time(store, where, params, batch_size), first_seq):
        batch.append(record)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _range_filter(start_us: int | None, end_us: int | None, start_offsets: Offsets | None,
                  end_offsets: Offsets | None, tenant: str | None) -> tuple[list[str], dict[str, Any]]:
    where = ["1"]
    params: dict[str, Any] = {}
    if start_us is not None:
        where.append("event_time >= fromUnixTimestamp64Micro({start:Int64}, 'UTC')")
        params["start"] = start_us
    if end_us is not None:
        where.append("event_time < fromUnixTimestamp64Micro({end:Int64}, 'UTC')")
        params["end"] = end_us
    # After FINAL (WHERE is not moved before it for a non-key column), so a twice-stored event is
    # judged by the position of the copy the table keeps.
    if start_offsets is not None:
        where.append(offsets_sql(start_offsets, ">=", "from", params))
    if end_offsets is not None:
        where.append(offsets_sql(end_offsets, "<", "to", params))
    if tenant is not None:
        where.append("tenant = {tenant:String}")
        params["tenant"] = tenant
    return where, params


def _read_by_time(store: Any, where: list[str], params: dict[str, Any], batch_size: int) -> Iterator[dict[str, Any]]:
    """The range's records in (event time, stream, seq) order, read a page at a time."""
    params = dict(params)
    last: tuple[Any, ...] | None = None
    while True:
        page = list(where)
        if last is not None:
            page.append("(toUnixTimestamp64Micro(event_time), stream_id, seq, toUnixTimestamp64Micro(ingested_at), "
                        "kafka_partition, kafka_offset) > ({lt:Int64}, {ls:String}, {lq:UInt64}, {li:Int64}, "
                        "{lp:UInt16}, {lo:UInt64})")
            params.update(lt=last[0], ls=last[1], lq=last[2], li=last[3], lp=last[4], lo=last[5])
        rows = store.query(
            f"SELECT {_COLUMNS}, toUnixTimestamp64Micro(ingested_at) FROM actions FINAL WHERE {' AND '.join(page)} "  # noqa: S608 - the clauses are _range_filter's constant fragments; values go as parameters, the limit is an int
            f"ORDER BY event_time, stream_id, seq, ingested_at, kafka_partition, kafka_offset "
            f"LIMIT {int(batch_size)}", params).rows
        if not rows:
            return
        batch = [_record(row[:-1]) for row in rows]
        yield from batch
        tail = batch[-1]
        last = (tail["event_time_us"], tail["stream_id"], tail["seq"], rows[-1][-1], tail["_partition"],
                tail["_offset"])
        if len(rows) < batch_size:
            return


def replay_range(store: Any, rule_paths: str | Sequence[str] | None, *, start_us: int | None = None,
                 end_us: int | None = None, start_offsets: Offsets | None = None,
                 end_offsets: Offsets | None = None, owners_path: str | None = None,
                 lateness_us: int = DEFAULT_LATENESS_US) -> list[Incident]:
    """The final incidents of ``rule_paths`` over the recorded range, sorted by incident id.

    :param start_offsets: first Kafka offsets judged, per partition (:func:`parse_bound`); default unbounded.
    :param end_offsets: first Kafka offsets not judged, per partition; default unbounded.
    """
    owners = None
    if owners_path:
        from agentaudit.rules.owners import load_owners

        owners = load_owners(owners_path)
    _check_partitions(store, start_offsets, end_offsets)
    evaluator = RuleEvaluator(load_rule_set(rule_paths), owners=owners, lateness_us=lateness_us)
    final: dict[str, Incident] = {}
    for batch in read_actions(store, start_us=start_us, end_us=end_us, start_offsets=start_offsets,
                              end_offsets=end_offsets):
        for incident in evaluator.evaluate(batch):
            final[incident.incident_id] = incident
    for incident in evaluator.flush():
        final[incident.incident_id] = incident
    return [final[k] for k in sorted(final)]


def _check_partitions(store: Any, *bounds: Offsets | None) -> None:
    """Refuse a named partition the actions table never recorded: ``12:30`` meant as a time would
    otherwise replay every other partition whole, silently."""
    named = sorted({p for b in bounds if b is not None for p, _ in b.partitions})
    if not named:
        return
    known = {int(row[0]) for row in store.query("SELECT DISTINCT kafka_partition FROM actions").rows}
    unknown = [p for p in named if p not in known]
    if unknown:
        raise RuleError(
            f"partition(s) {', '.join(map(str, unknown))} of the offset range have no recorded actions "
            f"(recorded: {', '.join(map(str, sorted(known))) or 'none'}); for a time, write it as ISO 8601 "
            f"with the date (2026-01-01T12:30)")


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
