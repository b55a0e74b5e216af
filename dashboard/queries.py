"""The dashboard's query layer: every read it makes, as typed functions over a read-only Store.

Every value a person types travels as a server-side query parameter (``{name:Type}``); the SQL
text is built only from constant fragments, so no filter can change what a query does. Table and
view names are unqualified: the store's session database (``AGENTAUDIT_DATABASE``, validated by
:class:`~agentaudit.settings.StoreSettings`) resolves them.

Incident state is read from the ``incident_current`` view (schemas/ddl/0010_analyst_views.sql),
which folds ``incident_lifecycle`` as :meth:`IncidentState.fold` does; the dashboard never writes it.

>>> store = connect(StoreSettings(), readonly=True)
>>> open_first = incidents(store, IncidentFilter(severities=("critical", "high")))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pyarrow import table as pa_table
from pyarrow import types as pa_types

from agentaudit.infra.clickhouse import Store

if TYPE_CHECKING:
    import pandas

__all__ = [
    "STATUS_ORDER",
    "IncidentFilter",
    "agent_metrics",
    "counts_by_owner",
    "counts_by_severity",
    "filter_options",
    "incident",
    "incident_counts",
    "incidents",
    "lifecycle_history",
    "owned_subjects",
    "recent_agents",
    "recent_traces",
    "rule_hits",
    "rules_summary",
    "team_summary",
    "trace",
    "trace_tenants",
    "triggering_events",
    "unowned_agents",
]

#: Status sort order of the incidents list: what is on fire comes first.
STATUS_ORDER = ("open", "acknowledged", "resolved")

_TS = "DateTime64(6, 'UTC')"


@dataclass(frozen=True)
class IncidentFilter:
    """What the incidents list shows; empty tuples and ``None`` mean "any".

    :param since: incidents last seen at or after this time (aware UTC datetime).
    :param until: incidents first seen at or before this time.
    :param search: substring of the incident id, summary or key (case-insensitive).
    """

    severities: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    search: str = ""
    limit: int = 500

    def where(self) -> tuple[str, dict[str, Any]]:
        """The ``WHERE`` clause (constant fragments only) and its parameters."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for column, values in (("severity", self.severities), ("owner", self.owners), ("status", self.statuses),
                               ("rule_id", self.rules), ("agent_id", self.agents), ("tenant", self.tenants)):
            if values:
                clauses.append(f"{column} IN {{f_{column}:Array(String)}}")
                params[f"f_{column}"] = list(values)
        if self.since is not None:
            clauses.append(f"last_seen >= {{f_since:{_TS}}}")
            params["f_since"] = _utc(self.since)
        if self.until is not None:
            clauses.append(f"first_seen <= {{f_until:{_TS}}}")
            params["f_until"] = _utc(self.until)
        if self.search:
            clauses.append("(positionCaseInsensitive(incident_id, {f_search:String}) > 0"
                           " OR positionCaseInsensitive(summary, {f_search:String}) > 0"
                           " OR positionCaseInsensitive(key, {f_search:String}) > 0)")
            params["f_search"] = self.search
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _frame(store: Store, sql: str, params: dict[str, Any] | None = None) -> pandas.DataFrame:
    """Rows as a DataFrame in one round trip; Arrow keeps the columns even when no row matched."""
    import pyarrow.compute as pc

    table = store.query_arrow(sql, params)
    # LowCardinality columns arrive dictionary-encoded: plain strings keep filters and charts simple.
    columns = [pc.cast(column, column.type.value_type) if pa_types.is_dictionary(column.type) else column
               for column in table.columns]
    return pa_table(columns, names=table.column_names).to_pandas()


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


# -- incidents ------------------------------------------------------------------------------

_LIST_COLUMNS = (
    "incident_id, tenant, severity, severity_rank, status, rule_id, rule_revision, mode, owner, assignee, "
    "agent_id, trace_id, summary, count, first_seen, last_seen, acknowledged_by, acknowledged_at, escalation_level, "
    "dateDiff('second', first_seen, now64(6)) AS age_seconds"
)


def incidents(store: Store, where: IncidentFilter | None = None) -> pandas.DataFrame:
    """The incidents list: open first, then acknowledged, then resolved; most severe and newest first.

    Each row carries its owner, assignee and age (``age_seconds`` since first seen).
    """
    where = where or IncidentFilter()
    clause, params = where.where()
    params["limit"] = where.limit
    sql = (f"SELECT {_LIST_COLUMNS} FROM incident_current{clause} "
           "ORDER BY indexOf(['open', 'acknowledged', 'resolved'], status), severity_rank DESC, last_seen DESC, "
           "incident_id LIMIT {limit:UInt32}")
    return _frame(store, sql, params)


def incident_counts(store: Store, where: IncidentFilter | None = None) -> pandas.DataFrame:
    """Incidents per severity, owner and status under the same filters (for badges and charts)."""
    clause, params = (where or IncidentFilter()).where()
    sql = ("SELECT severity, severity_rank, owner, status, count() AS incidents "
           f"FROM incident_current{clause} GROUP BY severity, severity_rank, owner, status "
           "ORDER BY severity_rank DESC, owner, status")
    return _frame(store, sql, params)


def counts_by_severity(store: Store, where: IncidentFilter | None = None, *, unresolved: bool = True) -> dict[str, int]:
    """``{severity: incidents}``, most severe first; only unresolved incidents unless ``unresolved=False``."""
    counts: dict[str, int] = {}
    frame = incident_counts(store, where)
    for row in frame.itertuples(index=False):
        if unresolved and row.status == "resolved":
            continue
        counts[row.severity] = counts.get(row.severity, 0) + int(row.incidents)
    return counts


def counts_by_owner(store: Store, where: IncidentFilter | None = None, *, unresolved: bool = True) -> dict[str, int]:
    """``{owner: incidents}`` (``""`` for unowned), largest first; unresolved only by default."""
    counts: dict[str, int] = {}
    frame = incident_counts(store, where)
    for row in frame.itertuples(index=False):
        if unresolved and row.status == "resolved":
            continue
        counts[row.owner] = counts.get(row.owner, 0) + int(row.incidents)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def filter_options(store: Store) -> dict[str, list[str]]:
    """Distinct values for the list's filter widgets: severity, owner, status, rule, agent, tenant."""
    sql = ("SELECT groupUniqArray(severity), groupUniqArray(owner), groupUniqArray(status), groupUniqArray(rule_id), "
           "groupUniqArray(agent_id), groupUniqArray(tenant) FROM incident_current")
    row = store.query(sql).first_row or ([], [], [], [], [], [])
    names = ("severity", "owner", "status", "rule", "agent", "tenant")
    return {name: sorted(values) for name, values in zip(names, row, strict=True)}


def incident(store: Store, incident_id: str) -> dict[str, Any] | None:
    """One incident with its current state (``incident_current`` columns), or ``None``."""
    result = store.query("SELECT * FROM incident_current WHERE incident_id = {id:String} LIMIT 1",
                         {"id": incident_id})
    rows = result.named_rows()
    return rows[0] if rows else None


_EVENT_COLUMNS = (
    "event_id, tenant, agent_id, run_id, trace_id, action_id, parent_action_id, links, depth, kind, name, phase, "
    "status, error_type, error_message, actor_type, actor_id, model, input_tokens, output_tokens, cost_usd, "
    "latency_us, start_time, end_time, event_time, stream_id, seq, event_hash"
)


#: Each event once, as first seen: a later copy with another body (``action_conflicts``) never replaces it.
_FIRST_COPY = "ORDER BY ingested_at, kafka_partition, kafka_offset LIMIT 1 BY event_id"


def triggering_events(store: Store, tenant: str, event_ids: list[str] | tuple[str, ...],
                      trace_id: str = "") -> pandas.DataFrame:
    """The action events an incident names, each once (its first-seen copy), in event-time order."""
    params: dict[str, Any] = {"tenant": tenant, "ids": list(event_ids)}
    trace_clause = ""
    if trace_id:  # narrows the read to the trace's granules (bloom index / by_trace projection)
        trace_clause = " AND trace_id = {trace:String}"
        params["trace"] = trace_id
    sql = (f"SELECT {_EVENT_COLUMNS} FROM (SELECT {_EVENT_COLUMNS} FROM actions WHERE tenant = {{tenant:String}} "
           f"AND event_id IN {{ids:Array(String)}}{trace_clause} {_FIRST_COPY}) ORDER BY event_time, event_id")
    return _frame(store, sql, params)


#: What a conversation timeline shows of an event's content: the start of a stored body, and the digests.
_CONTENT_COLUMNS = ("substringUTF8(input_body, 1, 200) AS input_preview, "
                    "substringUTF8(output_body, 1, 200) AS output_preview, input_digest, output_digest, attributes")


def trace(store: Store, tenant: str, trace_id: str, *, limit: int = 20_000) -> pandas.DataFrame:
    """Every event of one trace, each once (its first-seen copy), in event-time order (``by_trace`` projection).

    Besides the event columns: ``input_preview`` and ``output_preview`` (the first 200 characters of a
    stored body, empty when the SDK stored digests only), the digests and the attributes."""
    sql = (f"SELECT {_EVENT_COLUMNS}, input_preview, output_preview, input_digest, output_digest, attributes FROM "
           f"(SELECT {_EVENT_COLUMNS}, {_CONTENT_COLUMNS} FROM actions WHERE tenant = {{tenant:String}} "
           f"AND trace_id = {{trace:String}} {_FIRST_COPY}) ORDER BY event_time, event_id LIMIT {{limit:UInt32}}")
    return _frame(store, sql, {"tenant": tenant, "trace": trace_id, "limit": limit})


def trace_tenants(store: Store, trace_id: str) -> list[str]:
    """Tenants that have events in a trace (a pasted trace id carries no tenant)."""
    result = store.query("SELECT DISTINCT tenant FROM actions WHERE trace_id = {trace:String} ORDER BY tenant",
                         {"trace": trace_id})
    return [row[0] for row in result.rows]


def lifecycle_history(store: Store, incident_id: str) -> pandas.DataFrame:
    """Who acknowledged, assigned, resolved, ... an incident, with notes, oldest first."""
    sql = ("SELECT at, type, actor_type, actor_id, assignee, note, event_id FROM incident_lifecycle FINAL "
           "WHERE incident_id = {id:String} ORDER BY at, event_id")
    return _frame(store, sql, {"id": incident_id})


# -- owners ---------------------------------------------------------------------------------


def owned_subjects(store: Store) -> pandas.DataFrame:
    """The ownership map: which team owns which agent, tool, tenant or rule pattern."""
    sql = ("SELECT team, subject_kind, pattern, oncall, escalation, specificity, source FROM owners FINAL "
           "ORDER BY team, subject_kind, specificity DESC, pattern")
    return _frame(store, sql)


def team_summary(store: Store) -> pandas.DataFrame:
    """Per team: agents owned (that have acted), tools owned, incidents, open ones, time-to-acknowledge."""
    sql = """
        SELECT team,
               agents, tools,
               incidents, open, acknowledged, mean_tta_seconds, p50_tta_seconds, p90_tta_seconds
        FROM
        (
            SELECT team FROM owners FINAL
            UNION DISTINCT SELECT team FROM tta_by_team
        ) AS teams
        LEFT JOIN (SELECT team, arraySort(groupArray(agent_id)) AS agents FROM agent_owner GROUP BY team) AS a
            USING team
        LEFT JOIN (SELECT toString(team) AS team, arraySort(groupArray(pattern)) AS tools FROM owners FINAL
                   WHERE subject_kind = 'tool' GROUP BY team) AS t USING team
        LEFT JOIN tta_by_team AS i USING team
        ORDER BY open DESC, incidents DESC, team
        SETTINGS join_use_nulls = 0
    """
    return _frame(store, sql)


def unowned_agents(store: Store, *, since: datetime | None = None) -> pandas.DataFrame:
    """Agents that acted (since ``since``, default 7 days) but match no owners pattern."""
    sql = ("SELECT agent_id, tenant, count() AS events, max(event_time) AS last_seen FROM actions "
           f"WHERE event_time >= {{since:{_TS}}} AND agent_id NOT IN (SELECT agent_id FROM agent_owner) "
           "GROUP BY agent_id, tenant ORDER BY events DESC, agent_id")
    return _frame(store, sql, {"since": _utc(since) if since else _ago(24 * 7)})


def recent_agents(store: Store, *, since: datetime | None = None, limit: int = 50) -> pandas.DataFrame:
    """Agents that acted since ``since`` (default 24 hours), most recently active first: the kill list."""
    sql = ("SELECT agent_id, tenant, count() AS events, max(event_time) AS last_seen FROM actions "
           f"WHERE event_time >= {{since:{_TS}}} GROUP BY agent_id, tenant "
           "ORDER BY last_seen DESC, agent_id LIMIT {limit:UInt32}")
    return _frame(store, sql, {"since": _utc(since) if since else _ago(24), "limit": max(1, int(limit))})


# -- agents and rules over time -------------------------------------------------------------

_SUBJECTS = {"agent": "agent_id", "owner": "owner"}  # the only identifiers a caller may choose


def agent_metrics(store: Store, *, by: Literal["agent", "owner"] = "agent", since: datetime | None = None,
                  until: datetime | None = None, bucket_seconds: int = 300, tenant: str = "",
                  subjects: tuple[str, ...] = ()) -> pandas.DataFrame:
    """Throughput, error rate, cost and latency per time bucket and agent (or owning team).

    Columns: ``bucket, subject, events, events_per_second, errors, error_rate, cost_usd,
    latency_ms_avg, latency_ms_p95`` (latency over end events).
    """
    if by not in _SUBJECTS:
        raise ValueError(f"by must be one of {sorted(_SUBJECTS)}, not {by!r}")
    column = _SUBJECTS[by]
    clauses = [f"event_time >= {{since:{_TS}}}", f"event_time <= {{until:{_TS}}}"]
    params: dict[str, Any] = {"since": _utc(since) if since else _ago(24), "until": _utc(until) if until else
                              datetime.now(UTC) + timedelta(minutes=5), "bucket": max(1, int(bucket_seconds))}
    if tenant:
        clauses.append("tenant = {tenant:String}")
        params["tenant"] = tenant
    if subjects:
        clauses.append(f"{column} IN {{subjects:Array(String)}}")
        params["subjects"] = list(subjects)
    sql = (f"SELECT toStartOfInterval(event_time, toIntervalSecond({{bucket:UInt32}})) AS bucket, {column} AS subject, "
           "count() AS events, events / {bucket:UInt32} AS events_per_second, "
           "countIf(status IN ('error', 'timeout')) AS errors, errors / events AS error_rate, "
           "sum(cost_usd) AS cost_usd, avgIf(latency_us, latency_us IS NOT NULL) / 1000 AS latency_ms_avg, "
           "quantileIf(0.95)(latency_us, latency_us IS NOT NULL) / 1000 AS latency_ms_p95 "
           f"FROM actions_owned WHERE {' AND '.join(clauses)} GROUP BY bucket, subject ORDER BY bucket, subject")
    return _frame(store, sql, params)


def rule_hits(store: Store, *, since: datetime | None = None, bucket_seconds: int = 3600) -> pandas.DataFrame:
    """Incidents opened and hits folded per rule and time bucket (by first seen)."""
    sql = (f"SELECT toStartOfInterval(first_seen, toIntervalSecond({{bucket:UInt32}})) AS bucket, rule_id, "
           "count() AS incidents, sum(count) AS hits FROM incident_current "
           f"WHERE first_seen >= {{since:{_TS}}} GROUP BY bucket, rule_id ORDER BY bucket, rule_id")
    return _frame(store, sql, {"since": _utc(since) if since else _ago(24 * 7), "bucket": max(1, int(bucket_seconds))})


def rules_summary(store: Store) -> pandas.DataFrame:
    """Per rule: latest mode and revision, every revision seen, incidents, hits, open ones, last hit."""
    sql = ("SELECT rule_id, argMax(mode, last_seen) AS mode, argMax(rule_revision, last_seen) AS revision, "
           "arraySort(groupUniqArray(rule_revision)) AS revisions, any(severity) AS severity, count() AS incidents, "
           "sum(count) AS hits, countIf(status = 'open') AS open, max(last_seen) AS last_hit "
           "FROM incident_current GROUP BY rule_id ORDER BY incidents DESC, rule_id")
    return _frame(store, sql)


# -- traces ---------------------------------------------------------------------------------


def recent_traces(store: Store, *, tenant: str = "", agent: str = "", since: datetime | None = None,
                  errors_only: bool = False, limit: int = 50) -> pandas.DataFrame:
    """The newest traces (default the last 24 hours): size, depth, errors, cost and time span."""
    clauses = [f"event_time >= {{since:{_TS}}}"]
    params: dict[str, Any] = {"since": _utc(since) if since else _ago(24), "limit": limit}
    if tenant:
        clauses.append("tenant = {tenant:String}")
        params["tenant"] = tenant
    if agent:
        clauses.append("agent_id = {agent:String}")
        params["agent"] = agent
    having = " HAVING errors > 0" if errors_only else ""
    sql = ("SELECT tenant, trace_id, any(agent_id) AS agent, count() AS events, uniqExact(action_id) AS actions, "
           "max(depth) AS depth, countIf(status IN ('error', 'timeout', 'denied')) AS errors, sum(cost_usd) AS cost_usd, "
           "min(event_time) AS started, max(event_time) AS ended "
           f"FROM actions WHERE {' AND '.join(clauses)} GROUP BY tenant, trace_id{having} "
           "ORDER BY started DESC LIMIT {limit:UInt32}")
    return _frame(store, sql, params)
