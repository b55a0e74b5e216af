"""Attacks on the Grafana deployment of infra/: its datasource must not be able to write or leak a secret.

Grafana runs whatever SQL a panel (or anyone who can edit one) holds, so the boundary is the ClickHouse
user: the provisioned datasource logs in as the read-only agentaudit_reader with a password taken from the
environment, Grafana listens on loopback only with anonymous access and sign-up off, and a read-only
session refuses a hostile panel's writes. The tenant variable is a filter, not an access boundary (every
dashboard user may pick "All"); a quote in a tenant name still stays inside its string literal.
"""

from __future__ import annotations

from datetime import UTC

import pytest
import yaml

from agentaudit.infra.clickhouse import connect
from agentaudit.infra.exceptions import StoreError
from tests.dashboard_support import seeded_database
from tests.grafana_support import DATASOURCES, ROOT, dashboard, expand, panel_queries

COMPOSE = yaml.safe_load((ROOT / "infra" / "docker-compose.yml").read_text())


def test_the_datasource_is_the_read_only_user_with_its_password_from_the_environment():
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["jsonData"]["username"] == "agentaudit_reader"
    assert source["secureJsonData"]["password"] == "$AGENTAUDIT_READER_PASSWORD"
    assert "password" not in source["jsonData"] and source["editable"] is False
    users_script = (ROOT / "infra" / "compose" / "clickhouse-users.sh").read_text()
    assert "agentaudit_reader" in users_script and "readonly = 2" in users_script.replace("readonly=2", "readonly = 2")


def test_grafana_listens_on_loopback_without_anonymous_access_or_sign_up():
    grafana = COMPOSE["services"]["grafana"]
    assert all(str(port).startswith("127.0.0.1:") for port in grafana["ports"])
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")  # no default admin/admin


@pytest.mark.integration
def test_a_hostile_panel_cannot_write_through_the_read_only_session(store_server):
    settings, _ = seeded_database(store_server.url)
    with connect(settings, readonly=True) as reader:
        before = reader.query("SELECT count() FROM actions").rows[0][0]
        for attack in ("DROP TABLE actions", "TRUNCATE TABLE incidents",
                       "INSERT INTO incidents (incident_id, tenant) VALUES ('forged', 'acme')",
                       "ALTER TABLE actions DELETE WHERE 1"):
            with pytest.raises(StoreError):
                reader.query(attack)
        assert reader.query("SELECT count() FROM actions").rows[0][0] == before > 0
        assert reader.query("SELECT count() FROM incidents WHERE incident_id = 'forged'").rows[0][0] == 0
        # a tenant name built to close the literal and widen the filter matches no tenant at all
        sql = next(sql for title, sql, _ in panel_queries(dashboard()) if title.startswith("Cost by tenant"))
        low, high = reader.query("SELECT min(event_time), max(event_time) FROM actions").rows[0]
        start, end = low.replace(year=low.year - 1, tzinfo=UTC), high.replace(year=high.year + 1, tzinfo=UTC)
        hostile = expand(sql, start=start, end=end, interval_s=60,
                         variables={"tenant": ["acme' OR 1=1 OR tenant = 'globex"]})
        assert reader.query(hostile).rows == []
