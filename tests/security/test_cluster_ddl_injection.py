"""Attacks on ``agentaudit migrate --cluster NAME``: the cluster and database names are spliced into DDL
unquoted, so anything but a plain identifier must be refused before one statement is generated."""

from __future__ import annotations

import pytest

from agentaudit.consumers.cluster_ddl import (
    ClusterDDLError,
    cluster_sql,
    cluster_statements,
)
from agentaudit.consumers.exceptions import MigrationError
from agentaudit.settings import StoreSettings

HOSTILE = [
    "c; DROP DATABASE agentaudit",
    "c ON CLUSTER other",
    "c\nDROP TABLE x",
    "c' OR '1'='1",
    "c`",
    "c-- ",
    "c/*",
    "{shard}",
    "c)",
    "",
    " c",
    "c\x00",
    "ｃ",  # fullwidth letter: not ASCII, not an identifier ClickHouse resolves the same way
    "1c",
    "c" * 129,
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_cluster_name_is_refused(name: str) -> None:
    with pytest.raises(ClusterDDLError, match="cluster name") as caught:
        cluster_statements(StoreSettings(), name)
    assert isinstance(caught.value, MigrationError)  # the CLI reports it like any migration error


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_database_name_is_refused_even_past_settings_validation(name: str) -> None:
    # model_construct skips pydantic's pattern check: the generator must not rely on it.
    settings = StoreSettings.model_construct(database=name, retention_days=90, incident_retention_days=365)
    with pytest.raises(ClusterDDLError, match="database name"):
        cluster_sql(settings, "agentaudit")


def test_the_longest_plain_names_pass_and_appear_verbatim() -> None:
    cluster, database = "c" * 128, "d" * 128
    statements = cluster_statements(StoreSettings(database=database), cluster)
    assert len(statements) == len(cluster_statements(StoreSettings(), "agentaudit"))
    assert all(s.sql.count("ON CLUSTER ") == s.sql.count(f"ON CLUSTER {cluster}") == 1 for s in statements)
