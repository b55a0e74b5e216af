"""The dashboard's query layer and the analyst views against a real ``agentaudit store``."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from agentaudit.consumers._columns import ACTIONS_SCHEMA, LIFECYCLE_SCHEMA, stored_actions
from agentaudit.dashboard import IncidentFilter, TraceTree
from agentaudit.dashboard import queries as q
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.exceptions import StoreError
from agentaudit.schemas import Actor, IncidentLifecycleEvent, IncidentState, LifecycleType
from tests.dashboard_support import NOW_US, action_rows, seeded_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seeded(store_server):
    return seeded_database(store_server.url)


@pytest.fixture(scope="module")
def store(seeded) -> Store:
    with connect(seeded[0], readonly=True) as store:
        yield store


def ids(frame) -> list[str]:
    return list(frame["incident_id"])


class TestIncidents:
    def test_open_first_then_acknowledged_then_resolved_most_severe_first(self, store):
        frame = q.incidents(store)
        assert ids(frame) == ["inc-critical-open", "inc-high-reopened", "inc-low-open", "inc-high-acked",
                              "inc-medium-resolved"]
        assert list(frame["status"]) == ["open", "open", "open", "acknowledged", "resolved"]

    def test_rows_carry_owner_assignee_and_age(self, store):
        row = q.incidents(store).set_index("incident_id").loc["inc-high-acked"]
        assert row["owner"] == "team-support" and row["assignee"] == "team-support"
        # opened 3 h before NOW_US, which was fixed when the test modules were imported, maybe long ago
        since_import = datetime.now(UTC).timestamp() - NOW_US / 1e6
        assert 3 * 3600 - 60 <= row["age_seconds"] <= 3 * 3600 + since_import + 60

    @pytest.mark.parametrize("where, expected", [
        (IncidentFilter(severities=("high",)), {"inc-high-acked", "inc-high-reopened"}),
        (IncidentFilter(owners=("team-support",)), {"inc-high-acked"}),
        (IncidentFilter(owners=("",)), {"inc-low-open"}),
        (IncidentFilter(statuses=("resolved",)), {"inc-medium-resolved"}),
        (IncidentFilter(rules=("cost.spend-spike",)), {"inc-medium-resolved", "inc-high-reopened"}),
        (IncidentFilter(agents=("shadow-bot",)), {"inc-low-open"}),
        (IncidentFilter(tenants=("globex",)), {"inc-low-open"}),
        (IncidentFilter(search="REFUND"), {"inc-high-acked"}),
        (IncidentFilter(severities=("high",), statuses=("open",)), {"inc-high-reopened"}),
        (IncidentFilter(since=datetime.now(UTC) + timedelta(hours=1)), set()),
        (IncidentFilter(until=datetime.now(UTC) - timedelta(days=1)), set()),
        (IncidentFilter(since=datetime.now(UTC) - timedelta(hours=2),
                        until=datetime.now(UTC)), {"inc-critical-open", "inc-high-acked", "inc-low-open",
                                                            "inc-medium-resolved", "inc-high-reopened"}),
        (IncidentFilter(limit=2), {"inc-critical-open", "inc-high-reopened"}),
    ])
    def test_filters(self, store, where, expected):
        assert set(ids(q.incidents(store, where))) == expected

    def test_counts_by_severity_and_owner_of_unresolved(self, store):
        assert q.counts_by_severity(store) == {"critical": 1, "high": 2, "low": 1}
        assert q.counts_by_owner(store) == {"team-payments": 2, "": 1, "team-support": 1}
        assert q.counts_by_severity(store, unresolved=False)["medium"] == 1

    def test_filter_options(self, store):
        options = q.filter_options(store)
        assert options["tenant"] == ["acme", "globex"]
        assert options["status"] == ["acknowledged", "open", "resolved"]


class TestDetail:
    def test_incident_state_is_folded_from_lifecycle(self, store):
        acked = q.incident(store, "inc-high-acked")
        assert (acked["status"], acked["acknowledged_by"], acked["assignee"]) == ("acknowledged", "bob", "team-support")
        assert acked["tta_seconds"] == pytest.approx(600.0)
        resolved = q.incident(store, "inc-medium-resolved")
        assert (resolved["status"], resolved["resolved_by"], resolved["last_note"]) == ("resolved", "alice",
                                                                                        "budget raised")
        reopened = q.incident(store, "inc-high-reopened")
        assert (reopened["status"], reopened["resolved_by"], reopened["resolved_at"]) == ("open", "", None)
        fresh = q.incident(store, "inc-critical-open")
        assert (fresh["status"], fresh["acknowledged_by"], fresh["tta_seconds"]) == ("open", "", None)
        assert q.incident(store, "no-such-incident") is None

    def test_triggering_events_and_trace(self, store, seeded):
        _, data = seeded
        events = q.triggering_events(store, "acme", [data.violating_event], "tr-pay-1")
        assert list(events["event_id"]) == [data.violating_event]
        assert events["name"].iloc[0] == "shell.exec"
        assert q.triggering_events(store, "globex", [data.violating_event]).empty  # other tenant: nothing
        trace = q.trace(store, "acme", "tr-pay-1")
        assert len(trace) == 2 * data.traces["tr-pay-1"]
        assert trace["event_time"].is_monotonic_increasing
        tree = TraceTree.from_events(trace.to_dict("records"))
        target = tree.actions_of([data.violating_event])
        path = tree.path_to(target[0])
        assert tree.nodes[path[0]].kind == "invoke_agent" and tree.nodes[path[-1]].name == "shell.exec"
        assert q.trace_tenants(store, "tr-pay-1") == ["acme"]

    def test_lifecycle_history_in_order(self, store):
        history = q.lifecycle_history(store, "inc-high-reopened")
        assert list(history["type"]) == ["acknowledged", "resolved", "reopened"]
        assert history["note"].iloc[-1] == "it is back"


class TestOwnersAgentsRulesTraces:
    def test_team_summary(self, store):
        teams = q.team_summary(store).set_index("team")
        assert list(teams.loc["team-payments", "agents"]) == ["payments-bot"]
        assert list(teams.loc["team-sre", "tools"]) == ["shell.*"]
        assert teams.loc["team-payments", "open"] == 2 and teams.loc["team-payments", "incidents"] == 3
        assert teams.loc["team-support", "mean_tta_seconds"] == pytest.approx(600.0)

    def test_unowned_agents(self, store):
        assert list(q.unowned_agents(store)["agent_id"]) == ["shadow-bot"]

    def test_owned_subjects_prefers_specific_patterns(self, store):
        owned = q.owned_subjects(store)
        assert set(owned["pattern"]) == {"payments-*", "platform-*", "support-bot", "shell.*"}

    @pytest.mark.parametrize("by, subjects", [("agent", {"payments-bot", "support-bot", "shadow-bot"}),
                                              ("owner", {"team-payments", "team-support", ""})])
    def test_agent_metrics(self, store, seeded, by, subjects):
        frame = q.agent_metrics(store, by=by, bucket_seconds=3600)
        assert set(frame["subject"]) == subjects
        assert frame["events"].sum() == seeded[1].actions
        assert ((frame["error_rate"] >= 0) & (frame["error_rate"] <= 1)).all()
        assert (frame["latency_ms_avg"] > 0).all()

    def test_agent_metrics_refuses_unknown_grouping(self, store):
        with pytest.raises(ValueError):
            q.agent_metrics(store, by="agent_id; DROP TABLE actions")  # type: ignore[arg-type]  # the attack: not a Literal

    def test_rules(self, store):
        summary = q.rules_summary(store).set_index("rule_id")
        assert list(summary.loc["cost.spend-spike", "revisions"]) == ["rev-0ld", "rev-a1b2c3"]
        assert summary.loc["cost.spend-spike", "hits"] == 10
        hits = q.rule_hits(store)
        assert hits["incidents"].sum() == 5

    def test_recent_traces(self, store):
        traces = q.recent_traces(store).set_index("trace_id")
        assert traces.loc["tr-pay-1", "actions"] == 60
        assert set(q.recent_traces(store, tenant="globex")["trace_id"]) == {"tr-sha-1"}
        assert q.recent_traces(store, agent="nobody").empty


def test_the_dashboard_session_is_read_only(store):
    with pytest.raises(StoreError):
        store.command("INSERT INTO incident_lifecycle (event_id, incident_id) VALUES ('x', 'y')")


def test_trace_shows_each_event_once_despite_duplicate_inserts(store_server):
    settings, _ = seeded_database(store_server.url, big_trace_actions=10)
    rows, _ = action_rows(tenant="acme", agent_id="dup-bot", trace_id="tr-dup", actions=20, start_us=NOW_US - 60_000_000)
    with connect(settings) as writer:
        writer.insert_arrow("actions", stored_actions(pa.Table.from_pylist(rows, schema=ACTIONS_SCHEMA)))
        # At-least-once delivery: the same events again, redelivered from another offset (another block).
        again = [dict(row, kafka_offset=row["kafka_offset"] + 1000) for row in rows]
        writer.insert_arrow("actions", stored_actions(pa.Table.from_pylist(again, schema=ACTIONS_SCHEMA)))
        assert writer.query("SELECT count() FROM actions WHERE trace_id = 'tr-dup'").first_item == 80
    with connect(settings, readonly=True) as reader:
        assert len(q.trace(reader, "acme", "tr-dup")) == 40


_KINDS = ["acknowledged", "assigned", "resolved", "reopened", "escalated", "commented"]


def test_incident_current_agrees_with_the_python_fold(store_server):
    """Every sequence of up to three lifecycle events: the view's state equals IncidentState.fold."""
    settings, _ = seeded_database(store_server.url, big_trace_actions=5)
    sequences = [seq for n in range(1, 4) for seq in itertools.product(_KINDS, repeat=n)]
    lifecycle, expected = [], {}
    for n, seq in enumerate(sequences):
        incident_id = f"fold-{n}"
        events = [IncidentLifecycleEvent(event_id=str(uuid.uuid4()), incident_id=incident_id, tenant="acme",
                                         type=LifecycleType(kind), actor=Actor(type="human", id=f"p{i}"),
                                         assignee=f"team-{i}" if kind == "assigned" else None,
                                         note=f"n{i}" if i % 2 == 0 else None, at_us=NOW_US + i * 1_000_000)
                  for i, kind in enumerate(seq)]
        expected[incident_id] = IncidentState.fold(incident_id, events)
        lifecycle += [dict(event_id=e.event_id, incident_id=incident_id, tenant="acme", type=e.type.value,
                           actor_type="human", actor_id=e.actor.id, assignee=e.assignee or "", note=e.note or "",
                           at=e.at_us, attributes={}) for e in events]
    incidents = [dict(incident_id=i, tenant="acme", rule_id="r", rule_revision="v", severity="low", severity_rank=1,
                      mode="detect", owner="t", key="", window_start=NOW_US, window_end=NOW_US, agent_id="",
                      trace_id="", event_ids=[], first_seen=NOW_US, last_seen=NOW_US, count=1, summary="", tags=[],
                      attributes={}) for i in expected]
    from agentaudit.consumers._columns import INCIDENTS_SCHEMA

    with connect(settings) as writer:
        writer.insert_arrow("incidents", pa.Table.from_pylist(incidents, schema=INCIDENTS_SCHEMA))
        writer.insert_arrow("incident_lifecycle", pa.Table.from_pylist(lifecycle, schema=LIFECYCLE_SCHEMA))
        rows = writer.query("SELECT incident_id, status, assignee, acknowledged_by, resolved_by, escalation_level, "
                            "last_note FROM incident_current WHERE incident_id LIKE 'fold-%'").rows
    assert len(rows) == len(sequences)
    for incident_id, status, assignee, acked_by, resolved_by, escalations, note in rows:
        state = expected[incident_id]
        assert (status, assignee, acked_by, resolved_by, escalations, note) == (
            state.status.value, state.assignee or "", state.acknowledged_by or "", state.resolved_by or "",
            state.escalation_level, state.last_note or ""), (incident_id, [e.type.value for e in state.history])
