"""The cluster schema of ``agentaudit migrate --cluster``: pinned by a golden file, parsed by real chDB.

Regenerate the golden file after an intended DDL change with::

    AGENTAUDIT_REGEN_GOLDEN=1 .venv/bin/pytest -q tests/unit/test_cluster_ddl.py -p no:randomly

and review its diff like code: it is what operators run on their cluster.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentaudit.consumers.cluster_ddl import (
    LOCAL_SUFFIX,
    SHARDING_KEYS,
    ClusterDDLError,
    cluster_sql,
    cluster_statements,
)
from agentaudit.consumers.migrate import ddl_files, render, split_statements
from agentaudit.settings import StoreSettings

GOLDEN = Path(__file__).parents[1] / "golden" / "cluster_ddl.sql"
EXPLAIN = Path(__file__).parents[1] / "fixtures" / "chdb_explain.py"
SETTINGS = StoreSettings(database="agentaudit", retention_days=90, incident_retention_days=365)
CLUSTER = "agentaudit"


def _single_node() -> list[str]:
    return [st for path in ddl_files() for st in split_statements(render(path.read_text(encoding="utf-8"), SETTINGS))]


def _parse(statements: list[str]) -> list[tuple[bool, str, str]]:
    """``(ok, ast or error, formatted)`` per statement, from chDB in a child process."""
    done = subprocess.run([sys.executable, str(EXPLAIN)], input=json.dumps(statements), capture_output=True,
                          text=True, timeout=120, check=True)
    return [tuple(row) for row in json.loads(done.stdout)]


def _order_by(sql: str) -> str:
    return re.search(r"^ORDER BY (.+)$", sql, re.MULTILINE).group(1)  # type: ignore[union-attr]  # no match fails the test


def _engine_version(sql: str) -> str:
    args = re.search(r"^ENGINE = \w+\((.*)\)$", sql, re.MULTILINE)
    return "" if args is None else args.group(1).split(", ")[-1]


def test_generated_sql_matches_the_golden_file() -> None:
    sql = cluster_sql(SETTINGS, CLUSTER)
    if os.environ.get("AGENTAUDIT_REGEN_GOLDEN") == "1":
        GOLDEN.write_text(sql, encoding="utf-8")
    assert sql == GOLDEN.read_text(encoding="utf-8"), (
        "cluster DDL changed; if intended, regenerate with AGENTAUDIT_REGEN_GOLDEN=1 (see this module's docstring)")


def test_every_cluster_statement_parses_in_chdb_as_written() -> None:
    statements = [s.sql for s in cluster_statements(SETTINGS, CLUSTER)]
    results = _parse(statements)
    failed = [(sql.splitlines()[0], out) for sql, (ok, out, _) in zip(statements, results, strict=True) if not ok]
    assert failed == []
    for sql, (_, ast, formatted) in zip(statements, results, strict=True):
        # The parser kept the cluster clause and every GLOBAL the rules added (EXPLAIN AST prints neither).
        assert f" ON CLUSTER {CLUSTER} " in formatted + " ", sql.splitlines()[0]
        assert formatted.count("GLOBAL ") == sql.count("GLOBAL "), sql.splitlines()[0]
        assert ast.startswith(("CreateQuery", "AlterQuery")), ast[:80]


def test_the_parse_check_can_fail() -> None:
    (ok, error, _), = _parse(["CREATE TABLE x.y ON CLUSTER c (a String) ENGINE = Distributed(c, x, y_local, ,)"])
    assert not ok and "Syntax error" in error


def test_every_single_node_statement_still_parses_in_chdb() -> None:
    results = _parse(_single_node())
    assert [out for ok, out, _ in results if not ok] == []


def test_replicated_tables_keep_sort_key_version_and_ttl_of_the_single_node_tables() -> None:
    single = {m.group(1): st for st in _single_node() if (m := re.match(r"CREATE TABLE IF NOT EXISTS \w+\.(\w+)\n", st))}
    generated = {s.sql.split()[5]: s.sql for s in cluster_statements(SETTINGS, CLUSTER)
                 if s.sql.startswith("CREATE TABLE")}
    assert set(single) == set(SHARDING_KEYS)
    for table, sql in single.items():
        local = generated[f"{SETTINGS.database}.{table}{LOCAL_SUFFIX}"]
        assert _order_by(local) == _order_by(sql)
        assert re.search(r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/\{database\}/\{table\}', "
                         r"'\{replica\}'", local)
        single_version = _engine_version(sql)
        assert _engine_version(local) == (single_version or "'{replica}'")
        # Same columns, TTL and partitioning: the body between the name line and the engine is unchanged.
        assert sql[sql.index("\n"):sql.index("ENGINE")] == local[local.index("\n"):local.index("ENGINE")]
        assert "non_replicated_deduplication_window" not in local
        if "non_replicated_deduplication_window = 10000" in sql:
            assert "replicated_deduplication_window = 10000" in local
        distributed = generated[f"{SETTINGS.database}.{table}"]
        assert distributed.endswith(f"ENGINE = Distributed({CLUSTER}, {SETTINGS.database}, {table}{LOCAL_SUFFIX}, "
                                    f"{SHARDING_KEYS[table]})")


def test_sharding_keys_keep_rows_final_merges_on_one_shard() -> None:
    """Rows equal in the sort key must share a shard: the key's columns are sort-key columns, except for
    actions, whose (tenant, trace_id) is fixed by event_hash_bin (the hash of the body) in its sort key."""
    single = {m.group(1): st for st in _single_node() if (m := re.match(r"CREATE TABLE IF NOT EXISTS \w+\.(\w+)\n", st))}
    for table, key in SHARDING_KEYS.items():
        columns = set(re.fullmatch(r"cityHash64\((.+)\)", key).group(1).split(", "))  # type: ignore[union-attr]  # no match fails the test
        sort_key = set(_order_by(single[table]).strip("()").split(", "))
        if table == "actions":
            assert columns == {"tenant", "trace_id"} and "event_hash_bin" in sort_key
        else:
            assert columns <= sort_key, table
    # An incident and its lifecycle events share a shard (incident_current joins them by incident_id).
    assert SHARDING_KEYS["incidents"] == SHARDING_KEYS["incident_lifecycle"]


def test_views_read_the_distributed_tables_with_global_subqueries() -> None:
    views = [s.sql for s in cluster_statements(SETTINGS, CLUSTER) if s.sql.startswith("CREATE OR REPLACE VIEW")]
    assert len(views) == sum(st.startswith("CREATE OR REPLACE VIEW") for st in _single_node()) == 8
    for sql in views:
        assert LOCAL_SUFFIX + " " not in sql and f"{LOCAL_SUFFIX}\n" not in sql
        assert len(re.findall(r"\bJOIN\b", sql)) == len(re.findall(r"\bGLOBAL (?:LEFT |CROSS )?JOIN\b", sql))
        assert len(re.findall(r"\bIN \(\s*SELECT", sql)) == len(re.findall(r"\bGLOBAL IN \(\s*SELECT", sql))
    assert sum(sql.count("GLOBAL ") for sql in views) == 4  # agent_owner, actions_owned, incident_current joins + IN
    # Literal IN lists stay plain IN.
    assert any("type IN ('resolved', 'reopened')" in sql for sql in views)


def test_alters_reach_the_local_and_the_distributed_table() -> None:
    alters = [s.sql for s in cluster_statements(SETTINGS, CLUSTER) if s.sql.startswith("ALTER")]
    assert [a.split()[2] for a in alters] == ["agentaudit.actions_local", "agentaudit.actions"] * 2


def test_a_statement_no_rule_knows_stops_generation(tmp_path: Path) -> None:
    (tmp_path / "0001_x.sql").write_text("CREATE FUNCTION f AS (x) -> x;\n", encoding="utf-8")
    with pytest.raises(ClusterDDLError, match="no cluster rule") as caught:
        cluster_statements(SETTINGS, CLUSTER, directory=tmp_path)
    assert caught.value.file == "0001_x.sql"


def test_a_table_without_sharding_key_stops_generation(tmp_path: Path) -> None:
    (tmp_path / "0001_x.sql").write_text(
        "CREATE TABLE IF NOT EXISTS {database}.newtable\n(\n    a String\n)\nENGINE = ReplacingMergeTree\nORDER BY a;\n",
        encoding="utf-8")
    with pytest.raises(ClusterDDLError, match="newtable has no sharding key"):
        cluster_statements(SETTINGS, CLUSTER, directory=tmp_path)


def test_another_database_and_cluster_name_reach_every_statement() -> None:
    statements = cluster_statements(StoreSettings(database="audit_eu"), "prod_eu")
    assert all(" ON CLUSTER prod_eu" in s.sql for s in statements)
    assert not any("agentaudit." in s.sql for s in statements)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTAUDIT_DATABASE": "agentaudit", "AGENTAUDIT_RETENTION_DAYS": "90",
           "AGENTAUDIT_INCIDENT_RETENTION_DAYS": "365",
           "AGENTAUDIT_CLICKHOUSE_URL": "http://127.0.0.1:9"}  # --print must not connect: nothing listens on 9
    return subprocess.run([sys.executable, "-m", "agentaudit.cli", "migrate", *args], check=False, capture_output=True,
                          text=True,
                          env=env, timeout=120)


def test_migrate_cluster_print_writes_the_golden_sql_without_a_store() -> None:
    done = _cli("--cluster", CLUSTER, "--print")
    assert done.returncode == 0, done.stderr
    assert done.stdout == GOLDEN.read_text(encoding="utf-8")


def test_migrate_print_without_cluster_is_the_single_node_schema() -> None:
    done = _cli("--print")
    assert done.returncode == 0, done.stderr
    assert split_statements(done.stdout) == _single_node()
    assert "ON CLUSTER" not in done.stdout and "Distributed" not in done.stdout


def test_migrate_cluster_refuses_an_injected_name_and_prints_nothing() -> None:
    done = _cli("--cluster", "agentaudit; DROP DATABASE agentaudit", "--print")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "not a plain identifier" in done.stderr and "Traceback" not in done.stderr


def test_translation_is_idempotent_on_views_already_global() -> None:
    from agentaudit.consumers.cluster_ddl import _translate

    view = next(s.sql for s in cluster_statements(SETTINGS, CLUSTER) if "GLOBAL LEFT JOIN" in s.sql)
    plain = view.replace(f" ON CLUSTER {CLUSTER}\n", "\n", 1)
    assert _translate(plain, CLUSTER, "x.sql") == [view]


_DECLUSTER_ENGINE = re.compile(
    r"ENGINE = Replicated(\w+)\('/clickhouse/tables/\{shard\}/\{database\}/\{table\}', '\{replica\}'(?:, )?")


def test_the_cluster_schema_runs_in_chdb_against_a_two_shard_cluster_definition(tmp_path: Path) -> None:
    """Beyond parsing: chDB, given a 2-shard ``remote_servers``, creates the Distributed tables, applies the ALTERs
    to them and creates every view over them (view bodies are analysed at creation: a wrong column or table fails),
    and reading each view gets past query planning, where a non-GLOBAL subquery over a Distributed table fails.
    chDB has no Keeper, so the test strips exactly ``ON CLUSTER`` and the replication arguments; all else runs as
    generated."""
    config = tmp_path / "cluster.xml"
    config.write_text(
        "<clickhouse><remote_servers><agentaudit>"
        "<shard><replica><host>127.0.0.1</host><port>9</port></replica></shard>"
        "<shard><replica><host>127.0.0.2</host><port>9</port></replica></shard>"
        "</agentaudit></remote_servers></clickhouse>", encoding="utf-8")
    generated = [s.sql for s in cluster_statements(SETTINGS, CLUSTER)]
    local = [_DECLUSTER_ENGINE.sub(r"ENGINE = \1(", sql.replace(f" ON CLUSTER {CLUSTER}", ""))
             .replace("ENGINE = ReplacingMergeTree()", "ENGINE = ReplacingMergeTree")
             .replace("replicated_deduplication_window", "non_replicated_deduplication_window") for sql in generated]
    assert sum(a != b for a, b in zip(generated, local, strict=True)) == len(generated)  # every one was clustered
    checks = [f"SELECT engine FROM system.tables WHERE database = '{SETTINGS.database}' AND name = '{table}'"
              for table in SHARDING_KEYS]
    views = [re.match(r"CREATE OR REPLACE VIEW (\S+)", sql).group(1) for sql in local  # type: ignore[union-attr]  # no match fails the test
             if sql.startswith("CREATE OR REPLACE VIEW")]
    # Reading a view plans the distributed query before dialling the shards (nothing listens on port 9): an
    # analysis error such as "Double-distributed IN/JOIN subqueries is denied" (code 288) comes first.
    reads = [f"SELECT * FROM {view}" for view in views]
    # Control: the single-node body of action_conflicts, plain IN over the Distributed actions, is refused.
    conflicts = next(st for st in _single_node() if st.startswith(f"CREATE OR REPLACE VIEW {SETTINGS.database}.action_conflicts"))
    reads.append(conflicts[conflicts.index("AS SELECT") + 3:conflicts.rindex("\nCOMMENT")])
    done = subprocess.run([sys.executable, str(EXPLAIN), "apply", str(tmp_path / "chdb"), str(config)],
                          input=json.dumps(local + checks + reads), capture_output=True, text=True, timeout=300,
                          check=True)
    results = json.loads(done.stdout)
    failed = [(sql.splitlines()[0], error) for sql, (ok, error) in zip(local, results, strict=False) if not ok]
    assert failed == []
    assert [out for _, out in results[len(local):len(local) + len(checks)]] == ["Distributed"] * len(checks)
    read_errors = [re.search(r"Code: (\d+)", error).group(1) for _, error in results[-len(reads):]]  # type: ignore[union-attr]  # no match fails the test
    assert len(views) == 8
    assert read_errors == ["279"] * len(views) + ["288"]  # 279: all connection tries failed, after planning


def test_a_view_on_a_missing_column_fails_that_check(tmp_path: Path) -> None:
    config = tmp_path / "none.xml"
    config.write_text("<clickhouse></clickhouse>", encoding="utf-8")
    done = subprocess.run([sys.executable, str(EXPLAIN), "apply", str(tmp_path / "chdb"), str(config)],
                          input=json.dumps(["CREATE DATABASE d", "CREATE TABLE d.t (a String) ENGINE = Memory",
                                            "CREATE VIEW d.v AS SELECT b FROM d.t GLOBAL LEFT JOIN d.t AS u USING a"]),
                          capture_output=True, text=True, timeout=120, check=True)
    assert [ok for ok, _ in json.loads(done.stdout)] == [True, True, False]


class _Captured(Exception):
    """Raised by :class:`_RecordingStore` to stop a dashboard query function after its first query."""


class _RecordingStore:
    """Takes the dashboard's first query and its parameters; the SQL is then planned by chDB, not here."""

    def __init__(self) -> None:
        self.sql = ""
        self.params: dict[str, object] = {}

    def _take(self, sql: str, params: dict[str, object] | None = None, *_: object, **__: object) -> None:
        self.sql, self.params = sql, dict(params or {})
        raise _Captured

    query = query_arrow = query_df = command = _take


def _text(value: object) -> str:
    """A query parameter in ClickHouse's text format."""
    from datetime import datetime

    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, (list, tuple)):
        return "[" + ",".join("'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'" for v in value) + "]"
    return str(value)


def _dashboard_queries() -> dict[str, tuple[str, dict[str, str]]]:
    from agentaudit.dashboard import queries as q

    calls = {
        "incidents": lambda s: q.incidents(s), "incident_counts": lambda s: q.incident_counts(s),
        "counts_by_severity": lambda s: q.counts_by_severity(s), "counts_by_owner": lambda s: q.counts_by_owner(s),
        "filter_options": lambda s: q.filter_options(s), "incident": lambda s: q.incident(s, "i1"),
        "triggering_events": lambda s: q.triggering_events(s, "acme", ["e1", "e2"]),
        "trace": lambda s: q.trace(s, "acme", "t1"), "trace_tenants": lambda s: q.trace_tenants(s, "t1"),
        "lifecycle_history": lambda s: q.lifecycle_history(s, "i1"), "owned_subjects": lambda s: q.owned_subjects(s),
        "team_summary": lambda s: q.team_summary(s), "unowned_agents": lambda s: q.unowned_agents(s),
        "recent_agents": lambda s: q.recent_agents(s), "agent_metrics": lambda s: q.agent_metrics(s),
        "agent_metrics_by_owner": lambda s: q.agent_metrics(s, by="owner"), "rule_hits": lambda s: q.rule_hits(s),
        "rules_summary": lambda s: q.rules_summary(s), "recent_traces": lambda s: q.recent_traces(s),
    }
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for name, call in calls.items():
        store = _RecordingStore()
        with pytest.raises(_Captured):
            call(store)
        out[name] = (store.sql, {k: _text(v) for k, v in store.params.items()})
    return out


def test_the_dashboard_queries_plan_on_the_distributed_tables(tmp_path: Path) -> None:
    """The dashboard keeps its table names on a cluster: each of its queries, run in the database the cluster
    schema made (over a 2-shard definition), gets past planning and fails only dialling the shards."""
    config = tmp_path / "cluster.xml"
    config.write_text(
        "<clickhouse><remote_servers><agentaudit>"
        "<shard><replica><host>127.0.0.1</host><port>9</port></replica></shard>"
        "<shard><replica><host>127.0.0.2</host><port>9</port></replica></shard>"
        "</agentaudit></remote_servers></clickhouse>", encoding="utf-8")
    schema = [_DECLUSTER_ENGINE.sub(r"ENGINE = \1(", s.sql.replace(f" ON CLUSTER {CLUSTER}", ""))
              .replace("ENGINE = ReplacingMergeTree()", "ENGINE = ReplacingMergeTree")
              .replace("replicated_deduplication_window", "non_replicated_deduplication_window")
              for s in cluster_statements(SETTINGS, CLUSTER)]
    queries = _dashboard_queries()
    assert len(queries) == 19
    # The dashboard names tables without a database, as the store client's default database resolves them.
    reads = [[f"USE {SETTINGS.database}", None]] + [[sql, params] for sql, params in queries.values()]
    done = subprocess.run([sys.executable, str(EXPLAIN), "apply", str(tmp_path / "chdb"), str(config)],
                          input=json.dumps(schema + reads), capture_output=True, text=True, timeout=300, check=True)
    results = json.loads(done.stdout)
    assert all(ok for ok, _ in results[:len(schema) + 1])
    codes = {name: m.group(1) if (m := re.search(r"Code: (\d+)", error)) else error[:300]
             for name, (_, error) in zip(queries, results[len(schema) + 1:], strict=True)}
    assert codes == dict.fromkeys(queries, "279")
