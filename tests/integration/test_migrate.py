"""`agentaudit migrate` against the real store server: idempotent, and precise when a statement fails."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agentaudit.consumers.exceptions import MigrationError
from agentaudit.consumers.migrate import migrate
from agentaudit.infra.clickhouse import connect
from agentaudit.settings import StoreSettings

pytestmark = pytest.mark.integration

TABLES = ["actions", "incident_lifecycle", "incidents", "owners"]


def _schema(settings: StoreSettings) -> list[tuple[str, str]]:
    with connect(settings) as store:
        names = [r[0] for r in store.query(
            "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name", {"db": settings.database}).rows]
        return [(name, store.query(f"SHOW CREATE TABLE {settings.database}.{name}").rows[0][0]) for name in names]


def test_migrate_twice_is_a_no_op(store_settings_factory: Callable[[], StoreSettings]):
    base = store_settings_factory()
    settings = base.model_copy(update={"database": base.database + "_m", "retention_days": 30})
    first = migrate(settings)
    assert next(f.name for f in first) == "0001_base.sql"
    schema = _schema(settings)
    assert set(TABLES) <= {name for name, _ in schema}
    assert "toIntervalDay(30)" in dict(schema)["actions"]  # retention_days substituted
    with connect(settings) as store:
        store.command("INSERT INTO owners (subject_kind, pattern, team) VALUES ('agent', 'billing-*', 'payments')")
    again = migrate(settings)
    assert again == first
    assert _schema(settings) == schema
    with connect(settings) as store:
        assert store.query("SELECT team FROM owners").rows == [("payments",)]


def test_failing_statement_names_file_and_statement(store_settings_factory, tmp_path: Path):
    settings = store_settings_factory()
    (tmp_path / "0001_ok.sql").write_text("-- fine\nCREATE TABLE IF NOT EXISTS {database}.ok (a String)\n"
                                          "ENGINE = MergeTree ORDER BY a;\n")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE IF NOT EXISTS {database}.bad (a Strin)\n"
                                              "ENGINE = MergeTree ORDER BY a;\n")
    with pytest.raises(MigrationError) as caught:
        migrate(settings, directory=tmp_path)
    error = caught.value
    assert error.file == "0002_broken.sql"
    assert error.statement.startswith(f"CREATE TABLE IF NOT EXISTS {settings.database}.bad (a Strin)")
    assert "0002_broken.sql" in str(error) and "statement 1" in str(error)
    with connect(settings) as store:  # the earlier file was applied
        assert store.query(f"EXISTS TABLE {settings.database}.ok").rows == [(1,)]


def test_cli_migrate_runs_twice(store_settings_factory):
    settings = store_settings_factory()
    env = {**os.environ, "AGENTAUDIT_CLICKHOUSE_URL": settings.clickhouse_url, "AGENTAUDIT_DATABASE": settings.database}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "agentaudit.cli", "migrate"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"applied 0001_base.sql (5 statements) to {settings.database}" in done.stdout
    assert {name for name, _ in _schema(settings)} >= set(TABLES)
