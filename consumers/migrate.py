"""``agentaudit migrate``: apply the ClickHouse DDL in ``schemas/ddl`` in file order.

Every statement is idempotent (``IF NOT EXISTS``), so running the migration again is a
no-op; a failing statement stops the run with the file and statement named.

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

__all__ = ["MigrationFile", "ddl_files", "migrate", "render", "split_statements"]

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


def migrate(settings: StoreSettings, *, directory: Path | None = None, store: Store | None = None) -> list[MigrationFile]:
    """Apply every DDL file to the store; safe to run again.

    :param settings: where the store is and the placeholder values (``AGENTAUDIT_DATABASE``, ...).
    :param directory: DDL directory, default the packaged ``schemas/ddl``.
    :param store: an open store to use; default one is opened from ``settings`` and closed after.
    :raises MigrationError: a statement failed; ``.file`` and ``.statement`` say which.
    """
    owned = store is None
    store = connect(settings) if store is None else store
    applied: list[MigrationFile] = []
    try:
        for path in ddl_files(directory):
            statements = split_statements(render(path.read_text(encoding="utf-8"), settings))
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
