"""Ownership against a real store: unowned agents from the actions table, escalation input from incidents."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentaudit.cli import app
from agentaudit.consumers.migrate import migrate
from agentaudit.consumers.owners import agents_seen, open_incidents
from agentaudit.rules.owners import due_escalations, load_owners

pytestmark = pytest.mark.integration


def test_owners_check_lists_recent_unowned_agents(store_settings_factory, store_factory, tmp_path: Path) -> None:
    settings = store_settings_factory()
    migrate(settings)
    store = store_factory(settings)
    now = dt.datetime.now(dt.UTC)
    rows = [
        ("e1", "acme", "billing-1", now - dt.timedelta(hours=1)),
        ("e2", "acme", "stray-bot", now - dt.timedelta(days=2)),
        ("e3", "globex", "stray-bot", now - dt.timedelta(minutes=5)),
        ("e4", "acme", "ancient-bot", now - dt.timedelta(days=30)),
    ]
    store.insert_batch("actions", rows, ["event_id", "tenant", "agent_id", "event_time"])
    assert agents_seen(store, 7) == [("acme", "billing-1"), ("acme", "stray-bot"), ("globex", "stray-bot")]
    owners = tmp_path / "owners.yaml"
    owners.write_text("owners:\n  - {agent: 'billing-*', team: payments}\n  - {tenant: globex, team: g}\n")
    env = {"AGENTAUDIT_CLICKHOUSE_URL": settings.clickhouse_url, "AGENTAUDIT_DATABASE": settings.database}
    result = CliRunner().invoke(app, ["owners", "check", "--owners", str(owners), "--days", "7", "--fail"], env=env)
    assert result.exit_code == 1, result.output
    assert "unowned: tenant=acme agent=stray-bot" in result.output
    assert "3 agents seen in 7 days, 1 unowned" in result.output
    assert "ancient-bot" not in result.output


def test_escalation_reads_incidents_and_lifecycle_from_the_store(store_settings_factory, store_factory,
                                                                 tmp_path: Path) -> None:
    settings = store_settings_factory()
    migrate(settings)
    store = store_factory(settings)
    opened = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    columns = ["incident_id", "tenant", "rule_id", "rule_revision", "severity", "agent_id", "first_seen", "last_seen",
               "count"]
    store.insert_batch("incidents", [
        ("i-open", "acme", "security.x", "r1", "critical", "billing-1", opened, opened, 1),
        ("i-acked", "acme", "security.x", "r1", "critical", "billing-1", opened, opened, 1),
    ], columns)
    store.insert_batch("incident_lifecycle", [
        ("l1", "i-acked", "acme", "acknowledged", "human", "alice", opened + dt.timedelta(minutes=1)),
    ], ["event_id", "incident_id", "tenant", "type", "actor_type", "actor_id", "at"])
    incidents, lifecycle = open_incidents(store)
    assert [i.incident_id for i in incidents] == ["i-acked", "i-open"]
    assert incidents[0].first_seen_us == int(opened.timestamp()) * 1_000_000
    owners_file = tmp_path / "owners.yaml"
    owners_file.write_text("teams:\n  payments: {escalation: [alice, lead]}\n"
                           "owners:\n  - {agent: 'billing-*', team: payments}\n")
    now_us = int(opened.timestamp()) * 1_000_000 + 31 * 60_000_000
    events = due_escalations(incidents, lifecycle, load_owners(owners_file), now_us)
    assert [(e.incident_id, e.assignee) for e in events] == [("i-open", "alice"), ("i-open", "lead")]
