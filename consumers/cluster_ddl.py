"""The ClickHouse cluster schema, derived from the single-node DDL in ``schemas/ddl``.

A transformation, not a second copy, so the cluster schema cannot drift from the single-node one:
each table ``T`` becomes a replicated ``T_local`` plus a ``Distributed`` ``T``, and a statement no
rule knows stops generation (:class:`ClusterDDLError`). The rules: ``docs/cluster-ddl.md``; the
golden file ``tests/golden/cluster_ddl.sql`` pins the result.

>>> statements = cluster_statements(StoreSettings(), "agentaudit")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agentaudit.consumers.exceptions import MigrationError
from agentaudit.consumers.migrate import ddl_files, render, split_statements
from agentaudit.settings import StoreSettings

__all__ = ["LOCAL_SUFFIX", "SHARDING_KEYS", "ClusterDDLError", "ClusterStatement", "cluster_sql",
           "cluster_statements", "single_node_sql", "validate_identifier"]

#: Suffix of the per-shard replicated table behind each Distributed table.
LOCAL_SUFFIX = "_local"

#: Sharding key of each table. Rows that FINAL must merge (equal sort key) have to land on one shard:
#: ``actions`` is keyed by (tenant, trace_id), so a trace lives on one shard; rows equal in its sort key
#: share ``event_hash``, the hash of the whole body, and so share tenant and trace_id. The other keys are
#: made of sort-key columns. ``incidents`` and ``incident_lifecycle`` share ``incident_id``, so an
#: incident and its lifecycle sit on one shard.
SHARDING_KEYS: dict[str, str] = {
    "actions": "cityHash64(tenant, trace_id)",
    "incidents": "cityHash64(incident_id)",
    "incident_lifecycle": "cityHash64(incident_id)",
    "owners": "cityHash64(subject_kind, pattern)",
    "action_digests": "cityHash64(topic, kafka_partition)",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\n")
_ENGINE = re.compile(r"^ENGINE = (\w*MergeTree)(?:\((.*)\))?$", re.MULTILINE)
_ALTER = re.compile(r"ALTER TABLE (\w+)\.(\w+) ")
_VIEW = re.compile(r"CREATE OR REPLACE VIEW (\w+)\.(\w+)\n")
# A GLOBAL already written is matched too (and kept single), so the rule is idempotent.
_JOIN = re.compile(r"\b(?:GLOBAL )?((?:LEFT |RIGHT |INNER |FULL |CROSS )?(?:OUTER |ANY |ALL |SEMI |ANTI )?JOIN)\b")
_IN_SUBQUERY = re.compile(r"\b(?:GLOBAL )?IN \((?=\s*SELECT\b)")
_DEDUP_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\b")


class ClusterDDLError(MigrationError):
    """A name is not a plain identifier, or a DDL statement matches no cluster rule."""


@dataclass(frozen=True, slots=True)
class ClusterStatement:
    """One generated statement and the DDL file it came from."""

    file: str
    sql: str


def validate_identifier(value: str, what: str) -> str:
    """``value`` when it is a plain ClickHouse identifier (letters, digits, ``_``), else :class:`ClusterDDLError`.

    Cluster and database names are spliced into DDL unquoted, so nothing else may pass.
    """
    if not isinstance(value, str) or _IDENTIFIER.fullmatch(value) is None:
        raise ClusterDDLError(f"{what} {value!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 128 "
                              "characters); name the cluster as in remote_servers", file="", statement="")
    return value


def cluster_statements(settings: StoreSettings, cluster: str, *,
                       directory: Path | None = None) -> list[ClusterStatement]:
    """Every statement of the cluster schema, in DDL file order.

    :param settings: the database name and retention placeholders (``AGENTAUDIT_DATABASE``, ...).
    :param cluster: the cluster name of the servers' ``remote_servers`` configuration.
    :param directory: DDL directory, default the packaged ``schemas/ddl``.
    :raises ClusterDDLError: a bad name, or a statement no rule translates.
    """
    validate_identifier(cluster, "cluster name")
    validate_identifier(settings.database, "database name")
    out: list[ClusterStatement] = []
    for path in ddl_files(directory):
        for statement in split_statements(render(path.read_text(encoding="utf-8"), settings)):
            out.extend(ClusterStatement(path.name, sql) for sql in _translate(statement, cluster, path.name))
    return out


def cluster_sql(settings: StoreSettings, cluster: str, *, directory: Path | None = None) -> str:
    """The cluster schema as one script (``agentaudit migrate --cluster NAME --print``)."""
    parts: list[str] = []
    current = ""
    for item in cluster_statements(settings, cluster, directory=directory):
        if item.file != current:
            parts.append(f"-- {item.file}")
            current = item.file
        parts.append(item.sql + ";\n")
    return "\n".join(parts)


def single_node_sql(settings: StoreSettings, *, directory: Path | None = None) -> str:
    """The single-node schema as one script, as ``agentaudit migrate`` applies it (``migrate --print``)."""
    parts: list[str] = []
    for path in ddl_files(directory):
        parts.append(f"-- {path.name}")
        parts.extend(sql + ";\n" for sql in split_statements(render(path.read_text(encoding="utf-8"), settings)))
    return "\n".join(parts)


def _translate(statement: str, cluster: str, file: str) -> list[str]:
    if statement.startswith("CREATE DATABASE IF NOT EXISTS ") and "\n" not in statement:
        return [f"{statement} ON CLUSTER {cluster}"]
    if (table := _CREATE_TABLE.match(statement)) is not None:
        return _table(statement, table.group(1), table.group(2), cluster, file)
    if (alter := _ALTER.match(statement)) is not None:
        database, name = alter.groups()
        rest = statement[alter.end():]
        return [f"ALTER TABLE {database}.{name}{LOCAL_SUFFIX} ON CLUSTER {cluster} {rest}",
                f"ALTER TABLE {database}.{name} ON CLUSTER {cluster} {rest}"]
    if (view := _VIEW.match(statement)) is not None:
        head = f"CREATE OR REPLACE VIEW {view.group(1)}.{view.group(2)} ON CLUSTER {cluster}\n"
        body = _IN_SUBQUERY.sub("GLOBAL IN (", _JOIN.sub(r"GLOBAL \1", statement[view.end():]))
        return [head + body]
    raise ClusterDDLError(f"{file}: no cluster rule for statement {statement.splitlines()[0]!r}; add one to "
                          "agentaudit.consumers.cluster_ddl and regenerate tests/golden/cluster_ddl.sql",
                          file=file, statement=statement)


def _table(statement: str, database: str, name: str, cluster: str, file: str) -> list[str]:
    key = SHARDING_KEYS.get(name)
    if key is None:
        raise ClusterDDLError(f"{file}: table {name} has no sharding key; add it to SHARDING_KEYS (rows FINAL "
                              "merges must share a shard)", file=file, statement=statement)
    engines = list(_ENGINE.finditer(statement))
    if len(engines) != 1:
        raise ClusterDDLError(f"{file}: table {name} needs exactly one 'ENGINE = *MergeTree' line",
                              file=file, statement=statement)
    engine = engines[0]
    arguments = _REPLICA_PATH + (f", {engine.group(2)}" if engine.group(2) else "")
    local = (f"CREATE TABLE IF NOT EXISTS {database}.{name}{LOCAL_SUFFIX} ON CLUSTER {cluster}\n"
             + statement[_CREATE_TABLE.match(statement).end():engine.start()]  # type: ignore[union-attr]  # our own DDL: each starts CREATE TABLE
             + f"ENGINE = Replicated{engine.group(1)}({arguments})"
             + statement[engine.end():])
    local = _DEDUP_WINDOW.sub("replicated_deduplication_window", local)
    distributed = (f"CREATE TABLE IF NOT EXISTS {database}.{name} ON CLUSTER {cluster} "
                   f"AS {database}.{name}{LOCAL_SUFFIX}\n"
                   f"ENGINE = Distributed({cluster}, {database}, {name}{LOCAL_SUFFIX}, {key})")
    return [local, distributed]
