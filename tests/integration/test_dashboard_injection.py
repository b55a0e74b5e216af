"""SQL injection strings in every filter and argument of the query layer: no error, nothing matches,
and every table still holds exactly what it held (the session is also read-only, but the queries
must be safe on their own, so this runs on a read-WRITE session)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agentaudit.dashboard import IncidentFilter
from agentaudit.dashboard import queries as q
from agentaudit.infra.clickhouse import connect
from tests.dashboard_support import seeded_database

pytestmark = pytest.mark.integration

INJECTIONS = [
    "' OR 1=1 --",
    "'; DROP TABLE incidents; --",
    "\\'; DROP TABLE actions; --",
    "inc-critical-open' UNION ALL SELECT * FROM system.users --",
    "}; DROP TABLE owners; {f_severity:String}",
    "') OR ('a'='a",
    "\x00'; SELECT 1",
    "\"; DROP DATABASE default; --",
]

TABLES = ["actions", "incidents", "incident_lifecycle", "owners"]


@pytest.fixture(scope="module")
def writable(store_server):
    settings, _ = seeded_database(store_server.url, big_trace_actions=10)
    with connect(settings) as store:  # read-write on purpose: safety must not rest on readonly alone
        before = _counts(store)
        yield store
        assert _counts(store) == before, "an injection string changed a table"


def _counts(store) -> dict[str, int]:
    return {t: store.query(f"SELECT count() FROM {t}").first_item for t in TABLES}


@pytest.mark.parametrize("evil", INJECTIONS)
def test_injection_strings_match_nothing_and_change_nothing(writable, evil):
    for where in [IncidentFilter(severities=(evil,)), IncidentFilter(owners=(evil,)), IncidentFilter(statuses=(evil,)),
                  IncidentFilter(rules=(evil,)), IncidentFilter(agents=(evil,)), IncidentFilter(tenants=(evil,)),
                  IncidentFilter(search=evil)]:
        assert q.incidents(writable, where).empty, where
    assert q.incident_counts(writable, IncidentFilter(search=evil)).empty
    # A bad value beside a good one changes nothing about the good one.
    mixed = IncidentFilter(severities=(evil, "critical"))
    assert list(q.incidents(writable, mixed)["incident_id"]) == ["inc-critical-open"]
    assert q.incident(writable, evil) is None
    assert q.triggering_events(writable, evil, [evil], evil).empty
    assert q.triggering_events(writable, "acme", [evil]).empty
    assert q.trace(writable, "acme", evil).empty
    assert q.trace_tenants(writable, evil) == []
    assert q.lifecycle_history(writable, evil).empty
    assert q.recent_traces(writable, tenant=evil, agent=evil).empty
    assert q.agent_metrics(writable, tenant=evil).empty
    assert q.agent_metrics(writable, subjects=(evil,), by="owner").empty


def test_time_range_and_limits_are_typed(writable):
    # Out-of-range values are refused by the driver or the server's parameter parser, never spliced.
    old = datetime(1971, 1, 1, tzinfo=UTC)
    assert len(q.incidents(writable, IncidentFilter(since=old))) == 5
    assert q.incidents(writable, IncidentFilter(until=old)).empty
    with pytest.raises(Exception):  # noqa: B017 - a typed parameter refuses text
        q.incidents(writable, IncidentFilter(limit="1; DROP TABLE incidents"))  # type: ignore[arg-type]  # the attack: not an int
    assert _counts(writable)["incidents"] == 5
