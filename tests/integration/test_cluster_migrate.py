"""`migrate(cluster=...)` sends the cluster schema, not the single-node one, to the real store server.

The embedded chDB store is one server with no cluster and no Keeper, so the first ON CLUSTER statement is
refused; the error names the file and the generated statement, and nothing is created.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentaudit.consumers.exceptions import MigrationError
from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.settings import StoreSettings

pytestmark = pytest.mark.integration


def test_migrate_with_a_cluster_applies_the_cluster_statements(store_settings_factory: Callable[[], StoreSettings]):
    base = store_settings_factory()
    settings = base.model_copy(update={"database": base.database + "_cl"})
    with pytest.raises(MigrationError) as caught:
        migrate(settings, cluster="agentaudit")
    assert caught.value.file == "0001_base.sql"
    assert "Requested cluster 'agentaudit' not found" in str(caught.value)
    assert caught.value.statement == f"CREATE DATABASE IF NOT EXISTS {settings.database} ON CLUSTER agentaudit"
    with connect(base) as store:
        found = store.query("SELECT count() FROM system.databases WHERE name = {db:String}",
                            {"db": settings.database}).rows
    assert found == [(0,)]
