"""The dashboard's pages: Streamlit rendering over the query layer, one function per page."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import altair as alt
import pandas as pd
import streamlit as st

from agentaudit.dashboard import queries as q
from agentaudit.dashboard._catalog import RuleInfo
from agentaudit.dashboard.auth import User
from agentaudit.dashboard.chain import TraceTree, to_dot, waterfall_rows
from agentaudit.dashboard.control import ControlDesk
from agentaudit.dashboard.exceptions import DashboardError
from agentaudit.dashboard.lifecycle import LifecyclePublisher
from agentaudit.dashboard.settings import DashboardSettings
from agentaudit.dashboard.timeline import TimelineRow, focus, is_wide, timeline
from agentaudit.exceptions import AgentAuditError
from agentaudit.infra.clickhouse import Store

SEVERITY_ICON = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵", "info": "⚪"}
SEVERITY_COLOR = {"critical": "red", "high": "orange", "medium": "yellow", "low": "blue", "info": "gray"}
STATUS_ICON = {"open": "🔥", "acknowledged": "👀", "resolved": "✅"}
RANGES = {"last hour": 1, "last 24 hours": 24, "last 7 days": 24 * 7, "last 30 days": 24 * 30, "all time": None}


@dataclass
class Context:
    """What every page needs: the read-only store, the publisher, settings and the signed-in actor."""

    store: Store
    settings: DashboardSettings
    users: list[User]
    publisher: LifecyclePublisher | None
    actor: User | None
    catalog: dict[str, RuleInfo] = field(default_factory=dict)
    catalog_revision: str = ""
    control: ControlDesk | None = None  # kill and clear on the control topic (the Control page)


def human_age(seconds: float | None) -> str:
    """``3d 4h``, ``2h 5m``, ``45s``: ages an on-call engineer reads at a glance."""
    if seconds is None or seconds != seconds:  # noqa: PLR0124 - NaN is the only value unequal to itself (pandas hands NaN or NaT)
        return ""
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _since(label: str) -> datetime | None:
    hours = RANGES[label]
    return None if hours is None else datetime.now(UTC) - timedelta(hours=hours)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>:~$])")


def md(text: object) -> str:
    """Event data shown as literal text inside Markdown (no links, images, colours or code spans from data)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def _link(page: str, **params: str) -> str:
    """A relative deep link (``?page=incident&incident=...``); ids are URL-encoded, never trusted as URL text."""
    return "?" + urlencode({"page": page, **params})


def _goto(page: str, **params: str) -> None:
    st.query_params.clear()
    st.query_params.update({"page": page, **params})
    st.session_state["nav_page"] = page
    for key, value in params.items():
        st.session_state[f"goto_{key}"] = value


# -- incidents --------------------------------------------------------------------------------


def incidents_page(ctx: Context) -> None:
    """What is on fire: open incidents first, filters, counts by severity and owner."""
    st.title("Incidents")
    options = q.filter_options(ctx.store)
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns(4)
        severities = c1.multiselect("Severity", options["severity"], key="f_severity")
        owners = c2.multiselect("Owner", options["owner"], key="f_owner", format_func=lambda o: o or "(unowned)")
        statuses = c3.multiselect("Status", ["open", "acknowledged", "resolved"], key="f_status")
        window = c4.selectbox("Time range", list(RANGES), index=2, key="f_range")
        c5, c6, c7, c8 = st.columns(4)
        rules = c5.multiselect("Rule", options["rule"], key="f_rule")
        agents = c6.multiselect("Agent", options["agent"], key="f_agent")
        tenants = c7.multiselect("Tenant", options["tenant"], key="f_tenant")
        search = c8.text_input("Search id / summary", key="f_search")
    where = q.IncidentFilter(severities=tuple(severities), owners=tuple(owners), statuses=tuple(statuses),
                             rules=tuple(rules), agents=tuple(agents), tenants=tuple(tenants), since=_since(window),
                             search=search, limit=ctx.settings.list_limit)
    counts = q.incident_counts(ctx.store, where)
    unresolved = counts[counts["status"] != "resolved"] if len(counts) else counts
    cols = st.columns(6)
    cols[0].metric("Unresolved", int(unresolved["incidents"].sum()) if len(unresolved) else 0)
    for col, severity in zip(cols[1:], ("critical", "high", "medium", "low", "info"), strict=True):
        n = int(unresolved.loc[unresolved["severity"] == severity, "incidents"].sum()) if len(unresolved) else 0
        col.metric(f"{SEVERITY_ICON[severity]} {severity}", n)
    if len(unresolved):
        by_owner = (unresolved.assign(owner=unresolved["owner"].replace("", "(unowned)"))
                    .groupby(["owner", "severity", "severity_rank"], as_index=False)["incidents"].sum())
        # One band per owner, every label drawn: a fixed total height squeezed six owners into bands too
        # thin for their labels, and Vega dropped the overlapping ones (2 of 6 showed). SVG keeps the labels
        # in the page (readable by screen readers and the browser test).
        chart = alt.Chart(by_owner, usermeta={"embedOptions": {"renderer": "svg"}}).mark_bar().encode(
            x=alt.X("incidents:Q", title="unresolved incidents", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("owner:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=320)),
            color=alt.Color("severity:N", scale=alt.Scale(domain=list(SEVERITY_COLOR),
                                                          range=["#d62728", "#ff7f0e", "#e7ba00", "#1f77b4", "#9aa5b1"]),
                            legend=alt.Legend(orient="top", direction="horizontal", title=None)),
            order=alt.Order("severity_rank:Q", sort="descending"),
            tooltip=["owner", "severity", "incidents"],
        ).properties(height=alt.Step(26), title="Unresolved by owner")
        st.altair_chart(chart, width="stretch")
    frame = q.incidents(ctx.store, where)
    if frame.empty:
        st.info("No incidents match these filters.")
        return
    table = pd.DataFrame({
        "severity": [f"{SEVERITY_ICON.get(s, '')} {s}" for s in frame["severity"]],
        "status": [f"{STATUS_ICON.get(s, '')} {s}" for s in frame["status"]],
        "age": [human_age(a) for a in frame["age_seconds"]],
        "owner": frame["owner"].replace("", "(unowned)"),
        "assignee": frame["assignee"],
        "rule": frame["rule_id"],
        "agent": frame["agent_id"],
        "tenant": frame["tenant"],
        "summary": frame["summary"],
        "hits": frame["count"],
        "open": [_link("incident", incident=i) for i in frame["incident_id"]],
        "incident": frame["incident_id"],
    })
    st.caption(f"{len(frame)} incidents, open first, then acknowledged, then resolved")
    st.dataframe(table, hide_index=True, width="stretch", key="incidents_table", column_config={
        "open": st.column_config.LinkColumn("detail", display_text="open ›", width="small"),  # noqa: RUF001 - the link's arrow glyph, on purpose
        "hits": st.column_config.NumberColumn(width="small"),
    })
    c1, c2 = st.columns([3, 1])
    chosen = c1.selectbox("Open incident", list(frame["incident_id"]), key="open_incident",
                          format_func=lambda i: f"{i} — {frame.set_index('incident_id').loc[i, 'summary']}")
    if c2.button("Open detail", key="open_detail", width="stretch"):
        _goto("incident", incident=chosen)
        st.rerun()


# -- incident detail ----------------------------------------------------------------------------


def _publish(ctx: Context, action: str, incident: dict[str, Any], note: str, assignee: str = "") -> None:
    if ctx.actor is None:
        st.error("Sign in (sidebar) as an operator before acting on an incident: every action carries your name.")
        return
    if ctx.publisher is None:
        st.error("No Kafka broker configured (AGENTAUDIT_BOOTSTRAP_SERVERS): actions cannot be published.")
        return
    try:
        if action == "acknowledge":
            event = ctx.publisher.acknowledge(incident["incident_id"], actor=ctx.actor.name, tenant=incident["tenant"],
                                              note=note)
        elif action == "assign":
            event = ctx.publisher.assign(incident["incident_id"], assignee, actor=ctx.actor.name,
                                         tenant=incident["tenant"], note=note)
        else:
            event = ctx.publisher.resolve(incident["incident_id"], actor=ctx.actor.name, tenant=incident["tenant"],
                                          note=note)
    except (DashboardError, AgentAuditError) as exc:
        st.error(f"{action} failed: {exc}")
        return
    pending = st.session_state.setdefault("published", [])
    pending.append({"incident_id": event.incident_id, "type": event.type.value, "actor": event.actor.id,
                    "assignee": event.assignee or "", "note": event.note or "", "event_id": event.event_id})
    st.success(f"{event.type.value} by {event.actor.id} published to {ctx.publisher.topic} "
               f"(event {event.event_id}); the state updates once the sink has stored it.")


def incident_page(ctx: Context) -> None:
    """One incident: rule, owner, escalation, triggering events, the causal chain, history, actions."""
    st.title("Incident")
    if "goto_incident" in st.session_state:
        st.session_state["incident_id_input"] = st.session_state.pop("goto_incident")
    elif "incident_id_input" not in st.session_state:
        st.session_state["incident_id_input"] = st.query_params.get("incident", "")
    incident_id = st.text_input("Incident id", key="incident_id_input").strip()
    if not incident_id:
        recent = q.incidents(ctx.store, q.IncidentFilter(limit=50))
        if recent.empty:
            st.info("No incidents yet.")
            return
        incident_id = st.selectbox("or pick one", list(recent["incident_id"]), key="incident_pick")
    incident = q.incident(ctx.store, incident_id)
    if incident is None:
        st.warning(f"No incident {incident_id!r}.")
        return
    st.query_params["incident"] = incident_id
    severity, status = incident["severity"], incident["status"]
    st.markdown(f"### :{SEVERITY_COLOR.get(severity, 'gray')}-background[{SEVERITY_ICON.get(severity, '')} {severity}]"
                f" &nbsp; {STATUS_ICON.get(status, '')} **{md(status)}** &nbsp; {md(incident['summary'] or incident_id)}")
    events = q.triggering_events(ctx.store, incident["tenant"], incident["event_ids"], incident["trace_id"])
    trace_id = incident["trace_id"] or (events["trace_id"].iloc[0] if not events.empty else "")
    tree = TraceTree.from_events(q.trace(ctx.store, incident["tenant"], trace_id).to_dict("records")) if trace_id \
        else None
    targets = tree.actions_of(incident["event_ids"]) if tree is not None else []
    if tree is not None and is_wide(tree):
        # A flat agent loop: the conversation around the violation is what an on-call engineer reads first.
        _conversation(tree, targets, key="incident")
    rule = ctx.catalog.get(incident["rule_id"])
    c1, c2, c3 = st.columns(3)
    with c1.container(border=True):
        st.markdown(f"**Rule** {md(incident['rule_id'])}")
        st.caption(rule.desc if rule else "(rule not in the loaded rule files)")
        st.markdown(f"revision {md(incident['rule_revision'])} · mode **{md(incident['mode'])}**"
                    + (" · revision differs from the loaded rules" if ctx.catalog_revision
                       and incident["rule_revision"] != ctx.catalog_revision else ""))
    with c2.container(border=True):
        st.markdown(f"**Owner** {md(incident['owner'] or '(unowned)')}")
        st.markdown(f"**Assignee** {md(incident['assignee'] or '—')}")
        acked = incident["acknowledged_by"]
        st.markdown(f"**Escalation** level {incident['escalation_level']} · "
                    + (f"acknowledged by **{md(acked)}** after {human_age(incident['tta_seconds'])}" if acked
                       else "not acknowledged"))
    with c3.container(border=True):
        age = (datetime.now(UTC) - incident["first_seen"].replace(tzinfo=UTC)).total_seconds()
        st.markdown(f"**Age** {human_age(age)} · **hits** {incident['count']}")
        st.markdown(f"**Agent** {md(incident['agent_id'] or '—')} · **tenant** {md(incident['tenant'])}")
        trace_id = incident["trace_id"]
        st.markdown(f"**Trace** [{md(trace_id)}]({_link('traces', trace=trace_id)})" if trace_id else "**Trace** —")
    _actions(ctx, incident)

    st.subheader("Triggering events")
    if events.empty:
        st.caption("The triggering events are not in the store (yet, or past retention).")
    else:
        st.dataframe(events[["event_time", "agent_id", "kind", "name", "phase", "status", "error_type", "cost_usd",
                             "latency_us", "action_id", "event_id"]], hide_index=True, width="stretch")
    st.subheader("Causal chain")
    if tree is not None:
        _chain(ctx, tree, targets=targets, key="incident")
    else:
        st.caption("This incident names no trace.")
    st.subheader("Lifecycle history")
    history = q.lifecycle_history(ctx.store, incident_id)
    if history.empty:
        st.caption("No lifecycle events yet: nobody has acknowledged, assigned or resolved it.")
    else:
        st.dataframe(history, hide_index=True, width="stretch")
    st.button("Refresh", key="refresh_incident", help="Reload the state: actions show once the sink stored them")
    pending = [p for p in st.session_state.get("published", []) if p["incident_id"] == incident_id]
    stored = set(history["event_id"]) if not history.empty else set()
    waiting = [p for p in pending if p["event_id"] not in stored]
    if waiting:
        st.caption(f"{len(waiting)} published action(s) not stored yet: "
                   + ", ".join(f"{p['type']} by {p['actor']}" for p in waiting))


def _actions(ctx: Context, incident: dict[str, Any]) -> None:
    with st.container(border=True):
        who = ctx.actor.name if ctx.actor else None
        st.markdown(f"**Act** as **{md(who)}**" if who else "**Act** — sign in as an operator first (sidebar)")
        note = st.text_input("Note", key="action_note", placeholder="what you did or found")
        teams = sorted({u.team for u in ctx.users if u.team} | ({incident["owner"]} - {""}))
        people = [u.name for u in ctx.users]
        c1, c2, c3, c4 = st.columns([1, 2, 1, 1])
        if c1.button("Acknowledge", key="btn_ack", type="primary", disabled=incident["status"] != "open",
                     width="stretch"):
            _publish(ctx, "acknowledge", incident, note)
        assignee = c2.selectbox("Assign to", people + teams, key="assignee", label_visibility="collapsed")
        if c3.button("Assign", key="btn_assign", width="stretch"):
            _publish(ctx, "assign", incident, note, assignee=assignee)
        if c4.button("Resolve", key="btn_resolve", disabled=incident["status"] == "resolved", width="stretch"):
            _publish(ctx, "resolve", incident, note)


_MARK_STYLE = {
    "violation": "background:#ffd6d6;border-left:4px solid #d62728;font-weight:600",
    "missing-approval": "background:#fff1d6;border-left:4px dashed #d62728;color:#8a1c1c;font-style:italic",
    "approval": "background:#e3f5e1;border-left:4px solid #2ca02c",
    "other-approval": "background:#fff8e1;border-left:4px solid #e7ba00",
    "": "border-left:4px solid transparent",
}
_CELL = "padding:2px 8px;white-space:nowrap;vertical-align:top"


def _content_cell(text: str) -> str:
    """One line, cut with an ellipsis; the whole text (escaped) in the tooltip."""
    return (f'<td title="{html.escape(text)}" style="{_CELL};max-width:28em;overflow:hidden;'
            f'text-overflow:ellipsis">{html.escape(text)}</td>')


def _conversation_html(rows: list[TimelineRow], hidden_before: int, hidden_after: int) -> str:
    """The timeline as an HTML table; every value from the store is escaped (it is event data, not markup)."""
    def cell(text: str, extra: str = "") -> str:
        return f'<td style="{_CELL};{extra}">{html.escape(text)}</td>'

    head = "".join(f'<th style="{_CELL};text-align:left;color:#52606d">{h}</th>'
                   for h in ("time", "", "actor", "kind", "name", "status", "content"))
    body = []
    if hidden_before:
        body.append(f'<tr><td colspan="7" style="{_CELL};color:#7b8794">… {hidden_before} earlier actions</td></tr>')
    for row in rows:
        content = row.note if row.mark == "missing-approval" else row.detail
        if row.mark and row.mark != "missing-approval" and row.note:
            content = f"{row.note} · {content}" if content else row.note
        body.append(f'<tr class="aa-row aa-{row.mark or "plain"}" data-mark="{row.mark}" '
                    f'style="{_MARK_STYLE[row.mark]}">'
                    + cell(row.clock) + cell(row.offset, "color:#7b8794") + cell(row.actor) + cell(row.kind)
                    + cell(row.name) + cell(row.status)
                    + (cell(content, "white-space:normal") if row.mark == "missing-approval" else _content_cell(content))
                    + "</tr>")
    if hidden_after:
        body.append(f'<tr><td colspan="7" style="{_CELL};color:#7b8794">… {hidden_after} later actions</td></tr>')
    return (f'<table class="aa-timeline" style="border-collapse:collapse;font-size:13px;width:100%;'
            f'line-height:1.35"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def _conversation(tree: TraceTree, targets: list[str], *, key: str) -> None:
    """Messages, tool calls and approvals in order, the rows around the violation first."""
    rows = timeline(tree, targets=targets)
    start, stop = focus(rows)
    narrowed = stop - start < len(rows)
    title = f"**Conversation** · {len(tree)} actions in order"
    if targets:
        title += " · violating action in red, its approval (or the missing one) just above it"
    c1, c2 = st.columns([4, 1])
    c1.markdown(title)
    if narrowed and c2.toggle(f"Show all {len(tree)}", key=f"timeline_all_{key}"):
        start, stop = 0, len(rows)
    st.html(_conversation_html(rows[start:stop], start, len(rows) - stop))


def _chain(ctx: Context, tree: TraceTree, *, targets: list[str], key: str) -> None:
    if not len(tree):
        st.caption("The trace has no events in the store.")
        return
    path = tree.path_to(targets[0]) if targets else tree.longest_path()
    failed = sum(1 for n in tree.nodes.values() if n.failed)
    cost = sum(n.cost_usd for n in tree.nodes.values())
    st.caption(f"{len(tree)} actions, {failed} failed, ${cost:.4f}; chain of {len(path)} from the root to "
               + ("the violating action (red)" if targets else "the deepest action"))
    graph_tab, waterfall_tab = st.tabs(["Graph", "Waterfall"])
    with graph_tab:
        limit = ctx.settings.graph_max_nodes
        if len(tree) > limit:
            limit = st.slider("Nodes drawn (the rest collapse into '+N more')", 10, min(len(tree), 400), limit,
                              key=f"nodes_{key}")
        # natural size: stretched to the page width, a narrow left-to-right graph drew nodes a screen tall
        st.graphviz_chart(to_dot(tree, targets=targets, path=path, max_nodes=limit), width="content")
    with waterfall_tab:
        rows = pd.DataFrame(waterfall_rows(tree, highlight=path, targets=targets))
        if rows.empty:
            st.caption("No timed actions.")
            return
        only_chain = st.toggle("Only the chain", value=len(rows) > 200, key=f"only_chain_{key}")
        if only_chain:
            rows = rows[rows["on_chain"] | rows["violating"]]
        chart = alt.Chart(rows).mark_bar().encode(
            x=alt.X("start:T", title="time (UTC)"), x2="end:T",
            y=alt.Y("action:N", sort=alt.EncodingSortField("order"), title=None,
                    axis=alt.Axis(labels=len(rows) <= 150, labelLimit=320)),
            color=alt.Color("status:N"),
            stroke=alt.condition("datum.on_chain", alt.value("#d62728"), alt.value(None)),
            strokeWidth=alt.condition("datum.on_chain", alt.value(2), alt.value(0)),
            tooltip=["kind", "name", "status", "latency_ms", "cost_usd", "depth", "action_id"],
        ).properties(height=min(max(120, 16 * len(rows)), 2400))
        st.altair_chart(chart, width="stretch")


# -- owners, agents, rules, traces --------------------------------------------------------------


def owners_page(ctx: Context) -> None:
    """Per team: agents and tools owned, open incidents, time-to-acknowledge; agents nobody owns."""
    st.title("Owners")
    teams = q.team_summary(ctx.store)
    if teams.empty:
        st.info("No owners mapped and no incidents yet.")
    else:
        shown = teams.assign(team=teams["team"].replace("", "(unowned incidents)"),
                             mean_tta=[human_age(v) for v in teams["mean_tta_seconds"]],
                             p90_tta=[human_age(v) for v in teams["p90_tta_seconds"]])
        st.dataframe(shown[["team", "agents", "tools", "open", "incidents", "acknowledged", "mean_tta", "p90_tta"]],
                     hide_index=True, width="stretch")
    st.subheader("Agents no one owns")
    unowned = q.unowned_agents(ctx.store)
    if unowned.empty:
        st.success("Every agent that acted in the last 7 days has an owner.")
    else:
        st.warning(f"{unowned['agent_id'].nunique()} agent(s) acted without an owner: add them to the owners file.")
        st.dataframe(unowned, hide_index=True, width="stretch")
    with st.expander("Ownership map"):
        st.dataframe(q.owned_subjects(ctx.store), hide_index=True, width="stretch")


def agents_page(ctx: Context) -> None:
    """Throughput, error rate, cost and latency over time, per agent or per owning team."""
    st.title("Agents")
    c1, c2, c3 = st.columns(3)
    by = c1.radio("Per", ["agent", "owner"], horizontal=True, key="agents_by")
    window = c2.selectbox("Time range", [k for k in RANGES if RANGES[k]], index=1, key="agents_range")
    bucket = c3.selectbox("Bucket", [60, 300, 900, 3600], index=1, key="agents_bucket",
                          format_func=lambda s: f"{s // 60} min")
    frame = q.agent_metrics(ctx.store, by=by, since=_since(window), bucket_seconds=bucket)
    if frame.empty:
        st.info("No actions in this time range.")
        return
    frame["subject"] = frame["subject"].replace("", "(unowned)")
    totals = frame.groupby("subject", as_index=False).agg(events=("events", "sum"), errors=("errors", "sum"),
                                                          cost_usd=("cost_usd", "sum"))
    totals["error_rate"] = totals["errors"] / totals["events"]
    st.dataframe(totals.sort_values("events", ascending=False), hide_index=True, width="stretch")
    for column, title in (("events_per_second", "Throughput (events/s)"), ("error_rate", "Error rate"),
                          ("cost_usd", "Cost (USD per bucket)"), ("latency_ms_p95", "Latency p95 (ms)")):
        chart = alt.Chart(frame).mark_line(point=len(frame) < 200).encode(
            x=alt.X("bucket:T", title=None), y=alt.Y(f"{column}:Q", title=title), color=alt.Color("subject:N", title=by),
            tooltip=["bucket:T", "subject", alt.Tooltip(f"{column}:Q", format=".4f")],
        ).properties(height=220, title=title)
        st.altair_chart(chart, width="stretch")


def rules_page(ctx: Context) -> None:
    """Every rule with its hit counts over time, its mode and its revision."""
    st.title("Rules")
    summary = q.rules_summary(ctx.store)
    known = pd.DataFrame([{"rule_id": r.id, "desc": r.desc, "pack_mode": r.mode, "pack_severity": r.severity,
                           "kind": r.kind} for r in ctx.catalog.values()],
                         columns=["rule_id", "desc", "pack_mode", "pack_severity", "kind"])
    merged = known.merge(summary, on="rule_id", how="outer") if not summary.empty else known
    for column in ("incidents", "hits", "open"):
        if column in merged:
            merged[column] = merged[column].fillna(0).astype(int)
    if ctx.catalog_revision:
        st.caption(f"Loaded rule files: revision `{ctx.catalog_revision}`, {len(ctx.catalog)} rules")
    if merged.empty:
        st.info("No rules loaded and no incidents yet.")
        return
    order = [(c, up) for c, up in (("incidents", False), ("rule_id", True)) if c in merged]
    st.dataframe(merged.sort_values([c for c, _ in order], ascending=[up for _, up in order]), hide_index=True,
                 width="stretch")
    window = st.selectbox("Hits over", [k for k in RANGES if RANGES[k]], index=2, key="rules_range")
    hits = q.rule_hits(ctx.store, since=_since(window), bucket_seconds=3600 if RANGES[window] <= 48 else 86_400)
    if not hits.empty:
        chart = alt.Chart(hits).mark_bar().encode(
            x=alt.X("bucket:T", title=None), y=alt.Y("incidents:Q"), color=alt.Color("rule_id:N"),
            tooltip=["bucket:T", "rule_id", "incidents", "hits"],
        ).properties(height=260, title="Incidents opened per rule")
        st.altair_chart(chart, width="stretch")


def traces_page(ctx: Context) -> None:
    """Paste or pick a trace id and see the whole chain."""
    st.title("Trace explorer")
    if "goto_trace" in st.session_state:
        st.session_state["trace_input"] = st.session_state.pop("goto_trace")
    elif "trace_input" not in st.session_state:
        st.session_state["trace_input"] = st.query_params.get("trace", "")
    c1, c2 = st.columns([3, 1])
    trace_id = c1.text_input("Trace id", key="trace_input").strip()
    errors_only = c2.toggle("Only traces with errors", key="trace_errors")
    recent = q.recent_traces(ctx.store, errors_only=errors_only, since=_since("last 7 days"))
    if not trace_id:
        if recent.empty:
            st.info("No traces in the last 7 days.")
            return
        shown = recent.assign(open=[_link("traces", trace=t) for t in recent["trace_id"]])
        st.dataframe(shown, hide_index=True, width="stretch", column_config={
            "open": st.column_config.LinkColumn("trace", display_text="open ›", width="small")})  # noqa: RUF001 - the link's arrow glyph, on purpose
        trace_id = st.selectbox("Open trace", list(recent["trace_id"]), key="trace_pick")
    tenants = q.trace_tenants(ctx.store, trace_id)
    if not tenants:
        st.warning(f"No events for trace {trace_id!r}.")
        return
    tenant = tenants[0] if len(tenants) == 1 else st.selectbox("Tenant", tenants, key="trace_tenant")
    trace = q.trace(ctx.store, tenant, trace_id)
    tree = TraceTree.from_events(trace.to_dict("records"))
    failed = [a for a, n in tree.nodes.items() if n.failed]
    if is_wide(tree):
        _conversation(tree, [], key="trace")
    _chain(ctx, tree, targets=failed[-1:], key="trace")
    with st.expander(f"All {len(trace)} events"):
        st.dataframe(trace, hide_index=True, width="stretch")
