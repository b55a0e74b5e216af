"""``agentaudit migrate``: apply the ClickHouse DDL in ``schemas/ddl`` in file order.

Every statement is idempotent (``IF NOT EXISTS``), so running the migration again is a
no-op; a failing statement stops the run with the file and statement named.

A layout change that DDL alone cannot make runs first: an ``actions`` (or ``action_digests``) table of an earlier layout
(hashes as hex strings, the full-copy ``by_trace`` projection; or older, a sort key without
``event_hash``) is rebuilt under the current layout, every value copied (hex hashes to their bytes,
see :data:`HASH_CONVERSIONS`), and swapped in with ``EXCHANGE TABLES``; an interrupted rebuild
leaves ``actions__upgrade`` behind, which the next run drops and redoes.

>>> applied = migrate(StoreSettings())
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from agentaudit.consumers.exceptions import MigrationError
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.exceptions import StoreError
from agentaudit.settings import StoreSettings

__all__ = [
    "HASH_CONVERSIONS", "MigrationFile", "ddl_files", "migrate", "render", "split_statements", "upgrade_actions",
    "upgrade_digests",
]

_log = logging.getLogger("agentaudit.consumers.migrate")


@dataclass(frozen=True, slots=True)
class MigrationFile:
    """One applied DDL file and how many statements it held."""

    name: str
    statements: int


def ddl_files(directory: Path | None = None) -> list[Path]:
    """The ``NNNN_*.sql`` files of ``directory`` (default: the packaged ``schemas/ddl``) in order."""
    if directory is None:
        directory = Path(str(resources.files("agentaudit.schemas") / "ddl"))
    return sorted(directory.glob("*.sql"))


def render(sql: str, settings: StoreSettings) -> str:
    """Substitute ``{database}``, ``{retention_days}`` and ``{incident_retention_days}``."""
    # Plain replacement, not str.format: SQL may legitimately hold other braces (map literals).
    return (
        sql.replace("{database}", settings.database)
        .replace("{retention_days}", str(settings.retention_days))
        .replace("{incident_retention_days}", str(settings.incident_retention_days))
    )


def split_statements(sql: str) -> list[str]:
    """Statements of a DDL file: whole-line ``--`` comments dropped, split at ``;`` ending a line."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        if stripped.endswith(";"):
            current.append(line.rstrip()[:-1])
            statement = "\n".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        else:
            current.append(line)
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


def migrate(settings: StoreSettings, *, directory: Path | None = None, store: Store | None = None,
            cluster: str | None = None) -> list[MigrationFile]:
    """Apply every DDL file to the store; safe to run again.

    :param settings: where the store is and the placeholder values (``AGENTAUDIT_DATABASE``, ...).
    :param directory: DDL directory, default the packaged ``schemas/ddl``.
    :param store: an open store to use; default one is opened from ``settings`` and closed after.
    :param cluster: a ClickHouse cluster name: apply the cluster schema of
        :mod:`~agentaudit.consumers.cluster_ddl` (``ON CLUSTER``, replicated ``*_local`` tables behind
        Distributed ones) instead; the single-node layout upgrade is skipped (a cluster starts current).
    :raises MigrationError: a statement failed; ``.file`` and ``.statement`` say which.
    """
    owned = store is None
    store = connect(settings) if store is None else store
    applied: list[MigrationFile] = []
    try:
        if directory is None and cluster is None:
            upgrade_actions(store, settings)
            upgrade_digests(store, settings)
        for path, statements in _planned(settings, directory, cluster):
            for number, statement in enumerate(statements, start=1):
                try:
                    store.command(statement)
                except StoreError as exc:
                    first_line = statement.splitlines()[0]
                    raise MigrationError(
                        f"migration {path.name} statement {number} ({first_line!r}) failed on "
                        f"{settings.redacted_url()}: {exc}; fix the statement or the store and run "
                        "`agentaudit migrate` again (applied statements are idempotent)",
                        file=path.name,
                        statement=statement,
                    ) from exc
            _log.info("applied %s (%d statements) to %s", path.name, len(statements), settings.database)
            applied.append(MigrationFile(path.name, len(statements)))
    finally:
        if owned:
            store.close()
    return applied


def _planned(settings: StoreSettings, directory: Path | None, cluster: str | None) -> list[tuple[Path, list[str]]]:
    """The statements to apply, per DDL file: the files as written, or their cluster translation."""
    if cluster is None:
        return [(path, split_statements(render(path.read_text(encoding="utf-8"), settings)))
                for path in ddl_files(directory)]
    # Imported here: cluster_ddl imports this module.
    from agentaudit.consumers.cluster_ddl import cluster_statements

    by_file: dict[str, list[str]] = {}
    for item in cluster_statements(settings, cluster, directory=directory):
        by_file.setdefault(item.file, []).append(item.sql)
    return [(Path(name), statements) for name, statements in by_file.items()]


_COMPUTED = ("MATERIALIZED", "ALIAS", "EPHEMERAL")  # columns an INSERT neither reads nor writes
_CANONICAL = "(match({c}, '^[0-9a-f]{{64}}$') AND {c} != repeat('0', 64))"


def _to_bytes(column: str) -> str:
    return f"toFixedString(if({_CANONICAL.format(c=column)}, unhex({column}), ''), 32)"


def _to_text(column: str) -> str:
    return f"if({_CANONICAL.format(c=column)}, '', {column})"


#: How the upgrade fills a stored column from an earlier layout's hex column: as ``_columns.stored_actions``
#: and ``digests.digests_table`` do on insert (lowercase SHA-256 hex to bytes, anything else verbatim in
#: ``<name>_text``), so that the ALIAS columns read back every value as it was.
HASH_CONVERSIONS = {
    "prev_hash_bin": _to_bytes("prev_hash"), "prev_hash_text": _to_text("prev_hash"),
    "event_hash_bin": "toFixedString(if(match(event_hash, '^[0-9a-f]{64}$'), unhex(event_hash), ''), 32)",
    "input_digest_bin": _to_bytes("input_digest"), "input_digest_text": _to_text("input_digest"),
    "output_digest_bin": _to_bytes("output_digest"), "output_digest_text": _to_text("output_digest"),
    "leaves_bin": "arrayMap(x -> toFixedString(unhex(x), 16), leaves)",
}


@dataclass(frozen=True, slots=True)
class _Layout:
    """A table whose current layout DDL cannot reach from an earlier one: rebuilt by :func:`_rebuild`."""

    table: str
    file: str
    marker: str  # a column only the current layout has
    strict: str  # SQL over the earlier layout true for a row its bytes could not hold
    why: str


_ACTIONS = _Layout("actions", "0001_base.sql", "event_hash_bin",
                   "event_hash != '' AND NOT match(event_hash, '^[0-9a-f]{64}$')",
                   "whose event_hash is not SHA-256 hex (the current layout stores it as 32 bytes)")
_DIGESTS = _Layout("action_digests", "0002_digests.sql", "leaves_bin",
                   "NOT arrayAll(x -> match(x, '^[0-9a-f]{32}$'), leaves)",
                   "whose leaves are not 32 hex digits each (the current layout stores them as 16 bytes)")


def upgrade_actions(store: Store, settings: StoreSettings) -> bool:
    """Rebuild an ``actions`` table of an earlier layout into the current one; True when it did.

    Earlier layouts: hashes as hex strings with a full-copy ``by_trace`` projection (before issue 15), and
    before that a sort key without the body hash (``ReplacingMergeTree(ingested_at)``, which let a re-sent
    event with another body replace the first). Every value is copied (``ingested_at`` kept, so the
    first-seen order survives; hex hashes as bytes), then the tables are exchanged atomically. Idempotent:
    a current table is left alone.

    :raises MigrationError: a step failed, or an ``event_hash`` is not SHA-256 hex (the bytes could not hold
        it); the file is ``0001_base.sql`` and the statement the step's.
    """
    return _rebuild(store, settings, _ACTIONS)


def upgrade_digests(store: Store, settings: StoreSettings) -> bool:
    """Rebuild an ``action_digests`` table whose leaves are hex (before issue 15) with them as 16 bytes each;
    True when it did. Same steps and guarantees as :func:`upgrade_actions`.

    :raises MigrationError: a step failed, or a leaf is not 32 hex digits; the file is ``0002_digests.sql``.
    """
    return _rebuild(store, settings, _DIGESTS)


def _rebuild(store: Store, settings: StoreSettings, layout: _Layout) -> bool:
    db, table = settings.database, layout.table
    upgrade = f"{table}__upgrade"

    def run(sql: str) -> None:
        try:
            store.command(sql, settings={"insert_deduplicate": 0} if sql.startswith("INSERT") else None)
        except StoreError as exc:
            raise MigrationError(
                f"upgrading {db}.{table} to the current layout failed at {sql.splitlines()[0]!r} on "
                f"{settings.redacted_url()}: {exc}; fix the store and run `agentaudit migrate` again "
                f"(an interrupted upgrade is redone from the start)", file=layout.file, statement=sql) from exc

    def columns_of(name: str) -> dict[str, str]:
        return {str(column): str(kind) for column, kind in store.query(
            "SELECT name, default_kind FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "ORDER BY position", {"db": db, "t": name}).rows}

    try:
        old = columns_of(table)
    except StoreError as exc:
        raise MigrationError(f"cannot read the layout of {db}.{table} on {settings.redacted_url()}: {exc}",
                             file=layout.file, statement="SELECT name FROM system.columns") from exc
    run(f"DROP TABLE IF EXISTS {db}.{upgrade}")  # what an interrupted upgrade left (before or after the swap)
    if not old or layout.marker in old:
        return False
    odd = store.query(f"SELECT count() FROM {db}.{table} WHERE {layout.strict}").rows[0][0]  # noqa: S608 - db is a validated identifier (StoreSettings.database), the rest this module's constants
    if odd:
        raise MigrationError(
            f"{db}.{table} has {odd} rows {layout.why}; nothing was changed. Delete or fix those rows and run "
            "`agentaudit migrate` again", file=layout.file, statement=f"SELECT count() WHERE {layout.strict}")
    base = next(p for p in ddl_files() if p.name == layout.file)
    create = next(st for st in split_statements(render(base.read_text(encoding="utf-8"), settings))
                  if st.startswith(f"CREATE TABLE IF NOT EXISTS {db}.{table}\n"))
    run(create.replace(f"{db}.{table}\n", f"{db}.{upgrade}\n", 1))
    targets, sources = [], []
    for name, kind in columns_of(upgrade).items():
        if kind in _COMPUTED:
            continue
        if name in old and old[name] not in _COMPUTED:  # a stored column of the same name: copied as it is
            targets.append(f"`{name}`")
            sources.append(f"`{name}`")
        elif name in HASH_CONVERSIONS:
            targets.append(f"`{name}`")
            sources.append(HASH_CONVERSIONS[name])
    run(f"INSERT INTO {db}.{upgrade} ({', '.join(targets)}) SELECT {', '.join(sources)} FROM {db}.{table}")  # noqa: S608 - db is a validated identifier (StoreSettings.database), the names come from system.columns, backquoted, the conversions are this module's constants
    run(f"EXCHANGE TABLES {db}.{table} AND {db}.{upgrade}")
    run(f"DROP TABLE IF EXISTS {db}.{upgrade}")
    _log.info("upgraded %s.%s to the current layout (hashes as bytes)", db, table)
    return True
