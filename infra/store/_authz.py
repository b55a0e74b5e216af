"""What a read-only session may run, decided on ClickHouse's own parse tree.

The engine holds most of read-only by itself: each read-only request runs on its own chDB
connection with ``readonly = 1``, which refuses writes, DDL, every settings change and the
table functions that reach outside (``file``, ``url``, ``s3``, ``remote``, ``executable``,
``mysql`` ...). What ``readonly = 1`` lets through in chDB 26.x is closed here, on the tree
``parseQueryToJSON`` returns (the statement is bound as a parameter, so parsing it executes
nothing and a second statement is a parse error):

- ``INTO OUTFILE`` (chDB writes the file even under ``readonly = 1``);
- tables of ``system`` and ``information_schema`` (the host, other queries, paths), except
  ``one``, ``numbers``, ``zeros`` and ``settings`` (clickhouse-connect reads it on connect);
  ``system.databases`` only by its ``name``/``engine``/``comment`` columns;
- table functions other than the generators (``numbers``, ``zeros``, ``values``, ``view`` ...);
- functions that read files, the host or dictionaries (``file``, ``hostName``, ``dictGet`` ...);
- statements other than SELECT, EXPLAIN, SHOW TABLES/DATABASES and DESCRIBE;
- a SETTINGS clause anywhere that names a limit or ``readonly`` (the engine checks a top-level
  clause itself and ignores one in a subquery: refused either way).

Everything here is an allow-list: an AST node or statement kind it does not know is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["DENIED_DATABASES", "LIMIT_SETTINGS", "READER_DENIED_SETTINGS", "READER_TABLE_FUNCTIONS", "Refused",
           "check_explain_ast", "check_read_ast"]

DENIED_DATABASES = frozenset({"system", "information_schema"})
# Settings that hold the store's limits on a read-only connection (see StoreLimits.engine_settings).
LIMIT_SETTINGS = frozenset({"max_execution_time", "max_memory_usage", "max_result_bytes", "result_overflow_mode",
                            "timeout_overflow_mode", "max_threads"})
# Settings a read-only request may not set at all, anywhere (URL, session, SETTINGS clause).
READER_DENIED_SETTINGS = frozenset({
    "readonly", "allow_introspection_functions", "allow_ddl", "log_comment", "use_query_cache",
    "enable_writes_to_query_cache", "enable_reads_from_query_cache", "query_cache_share_between_users",
    "max_concurrent_queries_for_user", "workload", "priority", "os_thread_priority",
    "function_sleep_max_microseconds_per_block", "profile",
})
# Table functions that only generate values inside the engine.
READER_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "view", "null", "generateseries", "generate_series",
    "generaterandom",
})
# system tables with nothing about the host; None: any column.
_READER_SYSTEM_TABLES: dict[str, frozenset[str] | None] = {
    "one": None, "numbers": None, "numbers_mt": None, "zeros": None, "zeros_mt": None,
    "settings": None,  # clickhouse-connect reads it on connect; names, values and docs of settings only
    "databases": frozenset({"name", "engine", "comment"}),
}
# Functions that read files, the host, the server's configuration, other queries or dictionaries.
_DENIED_FUNCTIONS = frozenset(name.lower() for name in (
    "file", "catboostEvaluate", "hostName", "hostname", "fqdn", "fullHostName", "getOSKernelVersion",
    "filesystemAvailable", "filesystemCapacity", "filesystemUnreserved", "filesystemFree", "getServerPort",
    "tcpPort", "getMacro", "getClientHTTPHeader", "currentRequestURL", "getServerSetting", "serverUUID",
    "addressToLine", "addressToLineWithInlines", "addressToSymbol", "demangle", "buildId", "uptime",
    "joinGet", "joinGetOrNull", "hasColumnInTable", "hasTable", "zookeeperSessionUptime",
    "initialQueryID", "initial_query_id", "initialQueryStartTime", "initial_query_start_time", "shardNum",
    "shardCount", "revision", "currentProfiles", "enabledProfiles", "defaultProfiles", "currentRoles",
    "enabledRoles", "defaultRoles", "evalMLMethod", "modelEvaluate", "input", "s3", "url", "remote",
    "dictionary",
))
_DENIED_FUNCTION_PREFIXES = ("dict", "filesystem", "address", "getmacro")
# Roots of a read-only statement (parseQueryToJSON names).
_READ_ROOTS = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ExplainQuery",
                         "ShowTablesQuery"})
# EXPLAIN kinds that only describe (no EXPLAIN ... that runs the query: ANALYZE-style kinds do not exist in 26.x)
_EXPLAIN_KINDS = frozenset({"EXPLAIN", "EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN QUERY TREE", "EXPLAIN PLAN",
                            "EXPLAIN PIPELINE", "EXPLAIN ESTIMATE", "EXPLAIN TABLE OVERRIDE", "EXPLAIN CURRENT TRANSACTION"})
_MATCHERS = frozenset({"Asterisk", "QualifiedAsterisk", "ColumnsListMatcher", "ColumnsRegexpMatcher",
                       "QualifiedColumnsListMatcher", "QualifiedColumnsRegexpMatcher"})


class Refused(Exception):
    """A read-only request asks for something a read-only session may not do; says what."""


def _function_denied(name: str) -> bool:
    low = name.lower()
    return low in _DENIED_FUNCTIONS or low.startswith(_DENIED_FUNCTION_PREFIXES)


def _nodes(node: Any) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """Every dict in the tree with the key it hangs under (depth first)."""
    stack: list[tuple[str | None, Any]] = [(None, node)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, dict):
            yield key, item
            stack.extend(item.items())
        elif isinstance(item, list):
            stack.extend((key, child) for child in item)


def _database_of(parts: list[str], current: str | None) -> tuple[str, str]:
    if len(parts) >= 2:
        return parts[0], parts[1]
    return current or "default", parts[0] if parts else ""


def check_read_ast(tree_json: str, current_database: str | None) -> dict[str, str]:
    """Refuse (:class:`Refused`) a parsed statement a read-only session may not run.

    :param tree_json: ``parseQueryToJSON`` of the statement.
    :param current_database: the database unqualified table names resolve to.
    :returns: the settings of its top-level SETTINGS clause, to set on the connection before
        ``readonly = 1`` (clamped to the limits like URL parameters): the clause then changes
        nothing and the engine lets it through; a value the limits lowered differs and is refused.
    """
    if (current_database or "default").lower() in DENIED_DATABASES:
        raise Refused(f"database {current_database} is not readable by a read-only session")
    tree = json.loads(tree_json)
    root = tree.get("type")
    if root not in _READ_ROOTS:
        raise Refused(f"a read-only session runs SELECT, EXPLAIN, SHOW TABLES and DESCRIBE only, not {root}")
    if root == "ExplainQuery" and tree.get("kind", "EXPLAIN") not in _EXPLAIN_KINDS:
        raise Refused(f"{tree.get('kind')} is not allowed in a read-only session")
    if root == "ShowTablesQuery":
        if any(tree.get(flag) for flag in ("clusters", "cluster", "caches", "settings", "changed", "dictionaries",
                                           "m_settings", "temporary", "full")):
            raise Refused("a read-only session may list tables and databases only")
        source = tree.get("from")
        name = source.get("name") if isinstance(source, dict) else source
        if (name or current_database or "default").lower() in DENIED_DATABASES:
            raise Refused(f"database {name} is not readable by a read-only session")
    restricted = False  # a system table readable by some columns only is read
    identifiers: set[str] = set()
    matcher = False
    for key, node in _nodes(tree):
        kind = node.get("type")
        if node.get("out_file") is not None or node.get("is_into_outfile_with_stdout"):
            raise Refused("INTO OUTFILE writes a file on the store's machine: not in a read-only session")
        if kind == "TableIdentifier":
            database, table = _database_of(node.get("name_parts") or str(node.get("name", "")).split("."),
                                            current_database)
            if database.lower() in DENIED_DATABASES:
                if database.lower() != "system" or table.lower() not in _READER_SYSTEM_TABLES:
                    raise Refused(f"table {database}.{table} is not readable by a read-only session "
                                  "(system tables expose the host)")
                restricted |= _READER_SYSTEM_TABLES[table.lower()] is not None
        elif kind == "Function":
            name = str(node.get("name", ""))
            if key == "table_function":
                if name.lower() not in READER_TABLE_FUNCTIONS:
                    raise Refused(f"table function {name}() is not allowed in a read-only session "
                                  f"(allowed: {', '.join(sorted(READER_TABLE_FUNCTIONS))})")
            elif _function_denied(name):
                raise Refused(f"function {name}() reads the host, files or dictionaries: not in a read-only session")
        elif kind == "Identifier":
            parts = [str(p) for p in (node.get("name_parts") or str(node.get("name", "")).split("."))]
            identifiers.add(parts[-1].lower())
            if len(parts) >= 2 and parts[0].lower() in DENIED_DATABASES:  # noqa: SIM102 - two steps of one refusal: a denied database, then the system tables a reader may see
                if parts[0].lower() != "system" or parts[1].lower() not in _READER_SYSTEM_TABLES:
                    raise Refused(f"{'.'.join(parts)} is not readable by a read-only session")
        elif kind in _MATCHERS:
            matcher = True
        elif kind == "SetQuery":
            for change in node.get("changes") or ():
                name = str(change.get("name", ""))
                if name.lower() in READER_DENIED_SETTINGS:
                    raise Refused(f"a read-only session may not change {name}")
                if name.lower() in LIMIT_SETTINGS and not _tightens(change.get("value")):
                    raise Refused(f"a read-only session may lower {name}, not lift it")
    clause = _top_level_settings(tree)
    if restricted:
        if matcher:
            raise Refused("select named columns of system.databases (name, engine, comment), not *")
        if identifiers & _HOST_COLUMNS:
            raise Refused(f"columns {sorted(identifiers & _HOST_COLUMNS)} of system tables expose the host")
    return clause


def _tightens(value: Any) -> bool:
    """A limit setting's value that only tightens: a positive number or ``throw``."""
    inner = value.get("value") if isinstance(value, dict) else value
    if isinstance(inner, str):
        return inner.lower() == "throw"
    return isinstance(inner, (int, float)) and not isinstance(inner, bool) and inner > 0


def _top_level_settings(tree: dict[str, Any]) -> dict[str, str]:
    """Settings the engine applies to the whole statement: the root's and its SELECTs' (not subqueries')."""
    holders = [tree]
    selects = tree.get("list_of_selects")
    if isinstance(selects, dict):
        holders += [s for s in selects.get("children") or () if isinstance(s, dict)]
    out: dict[str, str] = {}
    for holder in holders:
        for key in ("settings", "settings_ast"):
            node = holder.get(key)
            if not isinstance(node, dict):
                continue
            for change in node.get("changes") or ():
                value = change.get("value")
                inner = value.get("value") if isinstance(value, dict) else value
                if isinstance(inner, bool):
                    inner = int(inner)
                if not isinstance(inner, (str, int, float)):
                    raise Refused(f"setting {change.get('name')} with a value of this type is not allowed in a "
                                  "read-only session")
                out[str(change.get("name"))] = str(inner)
    return out


# Columns of system.databases (and kin) that expose the host.
_HOST_COLUMNS = frozenset({"data_path", "metadata_path", "uuid", "engine_full", "create_table_query",
                           "dependencies_database", "dependencies_table", "loading_dependencies_database",
                           "loading_dependencies_table", "loading_dependent_database", "loading_dependent_table",
                           "storage_policy", "is_external"})

_EXPLAIN_LINE = re.compile(r"^( *)(\S+)(?: (.*?))?(?: \(children \d+\))?$")
_EXPLAIN_ROOTS = frozenset({"DescribeQuery"})


def check_explain_ast(explain: str, current_database: str | None) -> None:
    """Like :func:`check_read_ast` for the few statements ``parseQueryToJSON`` cannot serialise
    (DESCRIBE): walks ``EXPLAIN AST`` output of a statement already verified to be single."""
    if (current_database or "default").lower() in DENIED_DATABASES:
        raise Refused(f"database {current_database} is not readable by a read-only session")
    lines = [line for line in explain.splitlines() if line.strip()]
    root = lines[0].split(" ", 1)[0] if lines else ""
    if root not in _EXPLAIN_ROOTS:
        raise Refused(f"a read-only session runs SELECT, EXPLAIN, SHOW TABLES and DESCRIBE only, not {root}")
    table_expression_depth = -10
    for line in lines:
        match = _EXPLAIN_LINE.match(line)
        if match is None:
            raise Refused(f"cannot read the parse tree line {line!r}")
        depth, kind, rest = len(match.group(1)), match.group(2), (match.group(3) or "")
        name = rest.split(" ", 1)[0]
        if kind == "TableExpression":
            table_expression_depth = depth
        elif kind == "Function":
            if depth == table_expression_depth + 1:
                if name.lower() not in READER_TABLE_FUNCTIONS:
                    raise Refused(f"table function {name}() is not allowed in a read-only session")
            elif _function_denied(name):
                raise Refused(f"function {name}() reads the host, files or dictionaries: not in a read-only session")
        elif kind in ("TableIdentifier", "Identifier"):
            parts = name.split(".")
            database = parts[0] if len(parts) >= 2 else (current_database or "default") if kind == "TableIdentifier" \
                else ""
            if database.lower() in DENIED_DATABASES:
                raise Refused(f"{name} is not readable by a read-only session")
        elif kind == "Literal" and depth == 1:
            raise Refused("INTO OUTFILE is not allowed in a read-only session")
