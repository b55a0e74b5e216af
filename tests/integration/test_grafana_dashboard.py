"""infra/grafana: the dashboard's panels run, as Grafana would send them, on the real schema and data.

Grafana cannot run here, so the test does its part: it loads the dashboard JSON, expands each panel's
macros and the tenant variable (tests/grafana_support.py follows the plugin's expansions) and runs the SQL
in a read-only session on a chDB store migrated with the real DDL and seeded with incidents, actions and
costs. It also checks that the provisioning files and the compose mounts point at files that exist.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

import pytest
import yaml

from agentaudit.infra.clickhouse import connect
from tests.dashboard_support import seeded_database
from tests.grafana_support import DASHBOARD, DATASOURCES, GRAFANA, PROVIDERS, ROOT, dashboard, expand, panel_queries

pytestmark = pytest.mark.integration

BOARD = dashboard()
QUERIES = panel_queries(BOARD)
TITLES = ["Incidents over time by severity", "Incidents by owner", "Actions/s by agent", "Error rate",
          "Cost by tenant (USD per day)", "Top rules"]


@pytest.fixture(scope="module")
def reader(store_server):
    settings, _ = seeded_database(store_server.url)
    with connect(settings, readonly=True) as store:
        yield store


@pytest.fixture(scope="module")
def window(reader):
    """The seeded data's time range, padded, and every tenant (what Grafana's "All" would select)."""
    low, high = reader.query("SELECT min(event_time), max(event_time) FROM actions_first").rows[0]
    first, last = reader.query("SELECT min(first_seen), max(first_seen) FROM incident_current").rows[0]
    tenants = [row[0] for row in reader.query(BOARD["templating"]["list"][0]["query"]).rows]
    start = min(low, first).replace(tzinfo=UTC) - timedelta(hours=1)
    end = max(high, last).replace(tzinfo=UTC) + timedelta(hours=1)
    return start, end, tenants


def test_the_dashboard_has_the_six_panels_on_the_clickhouse_plugin():
    assert [panel["title"] for panel in BOARD["panels"]] == TITLES
    for panel in BOARD["panels"]:
        assert panel["datasource"]["type"] == "grafana-clickhouse-datasource"
        assert panel["datasource"]["uid"] == yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    ids = [panel["id"] for panel in BOARD["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("title, sql, fmt", QUERIES, ids=[t for t, _, _ in QUERIES])
def test_each_panel_runs_on_the_real_schema_and_returns_the_seeded_rows(reader, window, title, sql, fmt):
    start, end, tenants = window
    assert len(tenants) >= 2
    result = reader.query(expand(sql, start=start, end=end, interval_s=60, variables={"tenant": tenants}))
    rows = result.named_rows()
    assert rows, f"{title}: no rows over the seeded data"
    if fmt == 0:  # a time series: Grafana needs a DateTime column named time, inside the range
        assert all(start - timedelta(days=1) <= row["time"].replace(tzinfo=UTC) <= end for row in rows)
    if title == "Incidents over time by severity":
        total = reader.query("SELECT count() FROM incident_current").rows[0][0]
        assert sum(row["incidents"] for row in rows) == total
        assert {row["severity"] for row in rows} <= {"info", "low", "medium", "high", "critical"}
    if title == "Top rules":
        assert rows == sorted(rows, key=lambda row: -row["incidents"])
    if title == "Error rate":
        assert all(row["error_rate"] is None or 0 <= row["error_rate"] <= 1 for row in rows)
        assert any(row["error_rate"] for row in rows)
    if title == "Cost by tenant (USD per day)":
        assert {row["tenant"] for row in rows} <= set(tenants) and sum(row["cost_usd"] for row in rows) > 0


def test_one_tenant_selected_shows_only_that_tenant(reader, window):
    start, end, tenants = window
    sql = next(sql for title, sql, _ in QUERIES if title.startswith("Cost by tenant"))
    rows = reader.query(expand(sql, start=start, end=end, interval_s=60, variables={"tenant": tenants[:1]})).named_rows()
    assert rows and {row["tenant"] for row in rows} == {tenants[0]}


def test_provisioning_files_and_compose_mounts_point_at_existing_files():
    providers = yaml.safe_load(PROVIDERS.read_text())["providers"]
    compose = yaml.safe_load((ROOT / "infra" / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {target.rsplit(":", 1)[0] if target.endswith(":ro") else target: source
              for source, _, target in (volume.partition(":") for volume in grafana["volumes"])}
    sources = {Path("infra") / source for target, source in mounts.items() if source.startswith("./")}
    assert sources == {Path("infra/grafana/provisioning/datasources/clickhouse.yaml"),
                       Path("infra/grafana/provisioning/dashboards/agentaudit.yaml"),
                       Path("infra/grafana/dashboards/agentaudit.json")}
    assert all((ROOT / source).is_file() for source in sources)
    # the provider's folder is where compose mounts the dashboard JSON
    path = providers[0]["options"]["path"]
    assert mounts[f"{path}/{DASHBOARD.name}"] == "./" + DASHBOARD.relative_to(GRAFANA.parent).as_posix()
    assert "/etc/grafana/provisioning/datasources/clickhouse.yaml" in mounts
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
