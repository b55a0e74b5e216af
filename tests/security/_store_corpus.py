"""SQL abuse corpus against ``agentaudit store`` (issue 11): each case is an attack and the refusal it must get.

``{db}`` is the agentaudit database under attack, ``{out}`` a directory where no file may appear.
``code`` is the ClickHouse exception code of the expected refusal: 164 READONLY (the engine's
``readonly = 1`` or the parse-tree allow-list), 62 SYNTAX_ERROR (ClickHouse's parser: more than
one statement, or not SQL), 36 BAD_ARGUMENTS (an INSERT's inline data in a read-only request).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CORPUS", "MULTI_STATEMENT", "Case"]


class Case(NamedTuple):
    id: str
    attack: str
    sql: str
    code: int
    params: dict[str, str] = {}  # noqa: RUF012 - a NamedTuple field default, never mutated; _c passes its own dict


def _c(id: str, attack: str, sql: str, code: int = 164, **params: str) -> Case:
    return Case(id, attack, sql, code, params)


_TABLE_FUNCTIONS = [
    _c("tf-file", "read a host file", "SELECT * FROM file('/etc/passwd', 'LineAsString')"),
    _c("tf-file-glob", "read host files by glob", "SELECT * FROM file('/etc/*', 'LineAsString')"),
    _c("tf-file-upper", "table function name in another case", "SELECT * FROM FILE('/etc/passwd', 'LineAsString')"),
    _c("tf-url", "fetch a URL from the store's network", "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')"),
    _c("tf-s3", "read S3 with the store's credentials", "SELECT * FROM s3('http://127.0.0.1:1/b/k.csv', 'CSV', 'a String')"),
    _c("tf-s3cluster", "S3 over a cluster", "SELECT * FROM s3Cluster('default', 'http://127.0.0.1:1/b/k', 'CSV', 'a String')"),
    _c("tf-gcs", "read GCS", "SELECT * FROM gcs('http://127.0.0.1:1/b/k.csv', 'CSV', 'a String')"),
    _c("tf-hdfs", "read HDFS", "SELECT * FROM hdfs('hdfs://127.0.0.1:1/x', 'CSV', 'a String')"),
    _c("tf-azure", "read Azure blob storage", "SELECT * FROM azureBlobStorage('http://127.0.0.1:1/a', 'c', 'k.csv')"),
    _c("tf-remote", "query another server", "SELECT * FROM remote('127.0.0.1:1', system.one)"),
    _c("tf-remote-secure", "query another server over TLS", "SELECT * FROM remoteSecure('127.0.0.1:1', system.one)"),
    _c("tf-cluster", "query a cluster", "SELECT * FROM cluster('default', system.one)"),
    _c("tf-cluster-all", "query all replicas", "SELECT * FROM clusterAllReplicas('default', system.one)"),
    _c("tf-mysql", "reach a MySQL server", "SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')"),
    _c("tf-postgresql", "reach a PostgreSQL server", "SELECT * FROM postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')"),
    _c("tf-sqlite", "open a SQLite file", "SELECT * FROM sqlite('/tmp/x.db', 't')"),
    _c("tf-odbc", "reach ODBC", "SELECT * FROM odbc('DSN=x', 'd', 't')"),
    _c("tf-jdbc", "reach JDBC", "SELECT * FROM jdbc('x', 'y', 'z')"),
    _c("tf-mongodb", "reach MongoDB", "SELECT * FROM mongodb('127.0.0.1:1', 'd', 'c', 'u', 'p', 'x String')"),
    _c("tf-redis", "reach Redis", "SELECT * FROM redis('127.0.0.1:1', 'k', 'k String, v String')"),
    _c("tf-executable", "run a program", "SELECT * FROM executable('id', 'TSV', 'x String')"),
    _c("tf-dictionary", "read a dictionary", "SELECT * FROM dictionary('d')"),
    _c("tf-merge-system", "read system tables through merge()", "SELECT * FROM merge('system', '^tables$')"),
    _c("tf-python", "read Python objects of the store process (chDB)", "SELECT * FROM python('StoreServer')"),
    _c("tf-url-cluster", "fetch URLs over a cluster", "SELECT * FROM urlCluster('default', 'http://127.0.0.1:1/')"),
    _c("tf-file-cluster", "read files over a cluster", "SELECT * FROM fileCluster('default', '/etc/passwd', 'LineAsString')"),
    _c("tf-iceberg", "read an Iceberg table", "SELECT * FROM iceberg('http://127.0.0.1:1/t')"),
    _c("tf-deltalake", "read a Delta table", "SELECT * FROM deltaLake('http://127.0.0.1:1/t')"),
    _c("tf-loop-system", "loop over a system table", "SELECT * FROM loop(system.tables) LIMIT 1"),
    _c("tf-format", "a table function outside the allow-list", "SELECT * FROM format(CSV, '1,2')"),
    _c("tf-in-subquery", "file() hidden in an IN subquery",
       "SELECT count() FROM {db}.events WHERE id IN (SELECT * FROM file('/etc/hostname', 'LineAsString'))"),
    _c("tf-in-join", "url() hidden in a JOIN", "SELECT * FROM {db}.events AS e JOIN url('http://127.0.0.1:1/', "
       "'JSONEachRow', 'id String') AS u ON e.id = u.id"),
    _c("tf-in-cte", "file() hidden in a CTE", "WITH x AS (SELECT * FROM file('/etc/passwd', 'LineAsString')) SELECT * FROM x"),
    _c("tf-in-union", "file() in the second branch of a UNION",
       "SELECT id FROM {db}.events UNION ALL SELECT * FROM file('/etc/passwd', 'LineAsString')"),
    _c("tf-in-view", "file() inside view()", "SELECT * FROM view(SELECT * FROM file('/etc/passwd', 'LineAsString'))"),
    _c("tf-scalar-subquery", "file() in a scalar subquery",
       "SELECT (SELECT any(line) FROM file('/etc/passwd', 'LineAsString'))"),
]

_SETTINGS = [
    _c("set-readonly", "lift read-only with SET", "SET readonly = 0"),
    _c("set-readonly-case", "lift read-only with the name in upper case", "set READONLY=0"),
    _c("set-timeout", "lift the execution time limit with SET", "SET max_execution_time = 0"),
    _c("set-introspection", "enable introspection functions", "SET allow_introspection_functions = 1"),
    _c("set-profile", "switch to another settings profile", "SET profile = 'default'", 164),
    _c("settings-readonly", "lift read-only in a SETTINGS clause", "SELECT 1 SETTINGS readonly = 0"),
    _c("settings-timeout", "lift the time limit in a SETTINGS clause",
       "SELECT sum(number) FROM numbers(10) SETTINGS max_execution_time = 0"),
    _c("settings-memory", "lift the memory limit in a SETTINGS clause", "SELECT 1 SETTINGS max_memory_usage = 0"),
    _c("settings-result", "lift the result limit in a SETTINGS clause", "SELECT 1 SETTINGS max_result_bytes = 0"),
    _c("settings-threads", "take every core", "SELECT 1 SETTINGS max_threads = 10000"),
    _c("settings-subquery", "a SETTINGS clause inside a subquery",
       "SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 0)"),
    _c("settings-view", "a SETTINGS clause inside view()", "SELECT * FROM view(SELECT 1 SETTINGS readonly = 0)"),
    _c("settings-ddl", "allow DDL in a SETTINGS clause", "SELECT 1 SETTINGS allow_ddl = 1"),
    _c("param-readonly", "lift read-only with a URL parameter", "SELECT 1", 164, readonly="0", allow_ddl="1",
       allow_introspection_functions="1"),
    _c("param-introspection", "enable introspection by URL parameter", "SELECT 1", 164,
       allow_introspection_functions="1"),
    _c("param-log-comment", "take over the cancel tag by URL parameter", "SELECT 1", 164, log_comment="x"),
    _c("param-query-cache", "write the shared query cache", "SELECT 1", 164, use_query_cache="1"),
]

_OUTFILE = [
    _c("outfile-pth", "write a .pth file that Python runs at start",
       "SELECT 'import os' INTO OUTFILE '{out}/zz.pth' FORMAT LineAsString"),
    _c("outfile-truncate", "overwrite a file", "SELECT 1 INTO OUTFILE '{out}/a.txt' TRUNCATE"),
    _c("outfile-append", "append to a file", "SELECT 1 INTO OUTFILE '{out}/a.txt' APPEND"),
    _c("outfile-compressed", "write a compressed file", "SELECT 1 INTO OUTFILE '{out}/a.gz' COMPRESSION 'gzip'"),
    _c("outfile-union", "INTO OUTFILE after a UNION", "SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '{out}/u.txt'"),
    _c("outfile-with", "INTO OUTFILE after a CTE", "WITH 1 AS x SELECT x INTO OUTFILE '{out}/w.txt'"),
    _c("outfile-format-settings", "INTO OUTFILE with FORMAT and SETTINGS",
       "SELECT 1 INTO OUTFILE '{out}/f.txt' FORMAT CSV SETTINGS max_threads = 1"),
    _c("insert-into-function-file", "write a file with INSERT INTO FUNCTION",
       "INSERT INTO FUNCTION file('{out}/i.csv', 'CSV', 'a UInt8') SELECT 1"),
]

_SYSTEM = [
    _c("sys-tables", "list tables with their paths", "SELECT * FROM system.tables"),
    _c("sys-columns", "read every table's columns", "SELECT * FROM system.columns"),
    _c("sys-processes", "read other clients' running queries", "SELECT query FROM system.processes"),
    _c("sys-query-log", "read past queries", "SELECT query FROM system.query_log"),
    _c("sys-users", "list users", "SELECT * FROM system.users"),
    _c("sys-disks", "read disk paths", "SELECT path FROM system.disks"),
    _c("sys-server-settings", "read the server's configuration", "SELECT * FROM system.server_settings"),
    _c("sys-build-options", "read build options", "SELECT * FROM system.build_options"),
    _c("sys-metrics", "read server metrics", "SELECT * FROM system.asynchronous_metrics"),
    _c("sys-parts", "read part paths", "SELECT path FROM system.parts"),
    _c("sys-macros", "read macros", "SELECT * FROM system.macros"),
    _c("sys-errors", "read the server's errors", "SELECT * FROM system.errors"),
    _c("sys-stack-trace", "read the process's stack", "SELECT * FROM system.stack_trace"),
    _c("sys-databases-star", "read database paths with *", "SELECT * FROM system.databases"),
    _c("sys-databases-path", "read database paths by name", "SELECT data_path, metadata_path FROM system.databases"),
    _c("sys-backquoted", "system table in backquotes", "SELECT * FROM `system`.`tables`"),
    _c("sys-double-quoted", "system table in double quotes", 'SELECT * FROM "system"."tables"'),
    _c("sys-in", "a system table on the right of IN", "SELECT 1 WHERE 'x' IN system.tables"),
    _c("sys-join", "a system table in a JOIN",
       "SELECT e.id, t.data_paths FROM {db}.events AS e CROSS JOIN system.tables AS t"),
    _c("sys-subquery", "a system table in a scalar subquery", "SELECT (SELECT count() FROM system.processes)"),
    _c("info-schema", "information_schema tables", "SELECT * FROM information_schema.tables"),
    _c("info-schema-upper", "INFORMATION_SCHEMA in upper case", "SELECT * FROM INFORMATION_SCHEMA.COLUMNS"),
    _c("show-tables-system", "list system tables", "SHOW TABLES FROM system"),
    _c("show-processlist", "list running queries", "SHOW PROCESSLIST"),
    _c("show-create-system", "read a system table's definition", "SHOW CREATE TABLE system.tables"),
    _c("describe-system", "describe a system table", "DESCRIBE TABLE system.tables"),
    _c("describe-system-subquery", "describe a query over a system table",
       "DESCRIBE TABLE (SELECT * FROM system.tables)"),
    _c("exists-system", "probe a system table", "EXISTS TABLE system.tables"),
    _c("use-system", "make system the current database", "USE system"),
    _c("param-database-system", "system as the request's database", "SELECT * FROM tables", 164, database="system"),
    _c("show-settings", "list settings", "SHOW SETTINGS LIKE '%path%'"),
    _c("show-users", "list users", "SHOW USERS", 164),
]

_DICTIONARIES = [
    _c("dict-get", "read a dictionary", "SELECT dictGet('d', 'v', 1)"),
    _c("dict-get-default", "read a dictionary with a default", "SELECT dictGetOrDefault('d', 'v', 1, 'x')"),
    _c("dict-has", "probe a dictionary", "SELECT dictHas('d', 1)"),
    _c("dict-hierarchy", "walk a dictionary", "SELECT dictGetHierarchy('d', 1)"),
    _c("dict-upper", "dictionary function in upper case", "SELECT DICTGET('d', 'v', 1)"),
    _c("dict-system", "list dictionaries", "SELECT * FROM system.dictionaries"),
    _c("dict-show", "list dictionaries with SHOW", "SHOW DICTIONARIES"),
    _c("dict-create", "create a dictionary over a file",
       "CREATE DICTIONARY {db}.d (k UInt64, v String) PRIMARY KEY k SOURCE(FILE(path '/etc/passwd' format 'TSV')) "
       "LAYOUT(FLAT()) LIFETIME(0)"),
]

_HOST_FUNCTIONS = [
    _c("fn-file", "read a host file with the file() function", "SELECT file('/etc/hostname')"),
    _c("fn-hostname", "the host's name", "SELECT hostName()"),
    _c("fn-fqdn", "the host's FQDN", "SELECT fqdn()"),
    _c("fn-kernel", "the host's kernel", "SELECT getOSKernelVersion()"),
    _c("fn-filesystem", "the host's disk space", "SELECT filesystemAvailable()"),
    _c("fn-server-port", "the server's ports", "SELECT getServerPort('tcp_port')"),
    _c("fn-macro", "the server's macros", "SELECT getMacro('x')"),
    _c("fn-address", "the process's memory layout", "SELECT addressToLine(1)"),
    _c("fn-catboost", "load a model file", "SELECT catboostEvaluate('/etc/passwd', 1)"),
    _c("fn-joinget", "read a Join table anywhere", "SELECT joinGet('system.x', 'v', 1)"),
    _c("fn-server-uuid", "the server's id", "SELECT serverUUID()"),
    _c("fn-has-table", "probe tables of other databases", "SELECT hasColumnInTable('system', 'tables', 'name')"),
    _c("fn-server-setting", "read the server's configuration", "SELECT getServerSetting('path')"),
    _c("fn-nested", "file() nested in an expression", "SELECT length(concat('a', file('/etc/hostname')))"),
    _c("fn-where", "hostName() in WHERE", "SELECT id FROM {db}.events WHERE hostName() != ''"),
]

_WRITES = [
    _c("w-insert", "insert rows", "INSERT INTO {db}.events (id) VALUES ('x')"),
    _c("w-insert-format", "insert rows with FORMAT", "INSERT INTO {db}.events (id) FORMAT CSV\nx\n"),
    _c("w-insert-select", "insert from a select", "INSERT INTO {db}.events SELECT * FROM {db}.events"),
    _c("w-create", "create a table", "CREATE TABLE {db}.t2 (a UInt8) ENGINE = Memory"),
    _c("w-create-file-engine", "create a table over a host file",
       "CREATE TABLE {db}.t3 (a String) ENGINE = File(LineAsString, '/etc/passwd')"),
    _c("w-create-view", "create a view over file()",
       "CREATE VIEW {db}.v AS SELECT * FROM file('/etc/passwd', 'LineAsString')"),
    _c("w-drop", "drop the table", "DROP TABLE {db}.events"),
    _c("w-drop-db", "drop the database", "DROP DATABASE {db}"),
    _c("w-truncate", "empty the table", "TRUNCATE TABLE {db}.events"),
    _c("w-alter-delete", "delete rows", "ALTER TABLE {db}.events DELETE WHERE 1"),
    _c("w-delete", "lightweight delete", "DELETE FROM {db}.events WHERE 1"),
    _c("w-rename", "rename the table", "RENAME TABLE {db}.events TO {db}.gone"),
    _c("w-optimize", "force merges", "OPTIMIZE TABLE {db}.events FINAL"),
    _c("w-detach", "detach the table", "DETACH TABLE {db}.events"),
    _c("w-kill", "kill other clients' queries", "KILL QUERY WHERE 1"),
    _c("w-system", "drop the engine's caches", "SYSTEM DROP MARK CACHE"),
    _c("w-system-shutdown", "stop the server", "SYSTEM SHUTDOWN"),
    _c("w-grant", "grant rights", "GRANT ALL ON *.* TO default"),
    _c("w-create-user", "create a user", "CREATE USER evil IDENTIFIED BY 'x'"),
    _c("w-create-function", "create a SQL function", "CREATE FUNCTION evil AS (x) -> x"),
    _c("w-backup", "write a backup to disk", "BACKUP TABLE {db}.events TO File('{out}/b.zip')"),
]

# Multi-statement texts in every quoting form: the second statement must never run.
MULTI_STATEMENT = [
    _c("multi-plain", "a second statement after ;", "SELECT 1; DROP TABLE {db}.events", 62),
    _c("multi-no-space", "no space after ;", "SELECT 1;DROP TABLE {db}.events", 62),
    _c("multi-newlines", "the second statement on its own line", "SELECT 1;\n\n  DROP TABLE {db}.events", 62),
    _c("multi-double-semicolon", "an empty statement between", "SELECT 1;;DROP TABLE {db}.events", 62),
    _c("multi-single-quote", "; inside '' then a real ;", "SELECT ';'; DROP TABLE {db}.events", 62),
    _c("multi-doubled-quote", "a doubled '' escape", "SELECT 'it''s'; DROP TABLE {db}.events", 62),
    _c("multi-backslash-quote", "a backslash-escaped quote inside the string", "SELECT 'a\\''; DROP TABLE {db}.events", 62),
    _c("multi-backslash-backslash", "an escaped backslash before the quote",
       "SELECT '\\\\'; DROP TABLE {db}.events; SELECT '\\\\'", 62),
    _c("multi-double-quotes", "; inside a double-quoted identifier", 'SELECT 1 AS "a;b"; DROP TABLE {db}.events', 62),
    _c("multi-backquotes", "; inside a backquoted identifier", "SELECT 1 AS `a;b`; DROP TABLE {db}.events", 62),
    _c("multi-dollar", "the issue's $$ form", "SELECT $$'$$; DROP TABLE {db}.events; SELECT $$'$$", 62),
    _c("multi-dollar-insert", "the issue's $$ form with an INSERT",
       "SELECT $$'$$; INSERT INTO {db}.events (id) VALUES ('x'); SELECT $$'$$", 62),
    _c("multi-dollar-tag", "a $tag$ string", "SELECT $tag$;$tag$; DROP TABLE {db}.events", 62),
    _c("multi-dollar-backslash", "a backslash inside $$", "SELECT $$\\$$; DROP TABLE {db}.events", 62),
    _c("multi-line-comment", "; after a -- comment", "SELECT 1 -- ;\n; DROP TABLE {db}.events", 62),
    _c("multi-hash-comment", "; after a # comment", "SELECT 1 # ;\n; DROP TABLE {db}.events", 62),
    _c("multi-block-comment", "; after a /* */ comment", "SELECT 1 /* ; */; DROP TABLE {db}.events", 62),
    _c("multi-nested-comment", "nested block comments", "SELECT 1 /* /* ; */ */; DROP TABLE {db}.events", 62),
    _c("multi-unterminated-comment", "a comment hiding the ;", "SELECT 1 /* ; DROP TABLE {db}.events", 62),
    _c("multi-hex-string", "a hex string literal", "SELECT x'3B'; DROP TABLE {db}.events", 62),
    _c("multi-heredoc-insert", "INSERT ... SELECT then a DROP", "INSERT INTO {db}.events SELECT * FROM {db}.events "
       "WHERE 0; DROP TABLE {db}.events", 62),
    _c("multi-set", "a SELECT then SET readonly = 0", "SELECT 1; SET readonly = 0", 62),
    _c("multi-truncate", "a SELECT then TRUNCATE", "SELECT 1; TRUNCATE TABLE {db}.events", 62),
    _c("multi-alter", "a SELECT then ALTER DELETE", "SELECT 1 ; ALTER TABLE {db}.events DELETE WHERE 1", 62),
    _c("multi-use", "USE then a DROP", "USE {db}; DROP TABLE events", 62),
    _c("multi-set-then-select", "SET then a SELECT", "SET max_threads = 1; DROP TABLE {db}.events", 62),
    _c("multi-unicode-space", "a non-ASCII space around ;", "SELECT 1;\u00a0DROP TABLE {db}.events", 62),
]

CORPUS = _TABLE_FUNCTIONS + _SETTINGS + _OUTFILE + _SYSTEM + _DICTIONARIES + _HOST_FUNCTIONS + _WRITES + MULTI_STATEMENT
