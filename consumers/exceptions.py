"""Errors of the consumers (sink, migrations; rule errors are :mod:`agentaudit.rules.exceptions`)::

    AgentAuditError
    └── ConsumerError                    the sink or a migration could not do its job
        └── MigrationError               a DDL statement failed; names the file and the statement

Bad input never raises out of the sink: undecodable messages go to the dead-letter topic.
"""

from __future__ import annotations

from agentaudit.exceptions import AgentAuditError

__all__ = ["ConsumerError", "MigrationError"]


class ConsumerError(AgentAuditError):
    """The sink or a migration failed."""


class MigrationError(ConsumerError):
    """A schema migration statement failed.

    :param file: the DDL file (name) that holds the statement.
    :param statement: the statement, placeholders substituted.
    """

    def __init__(self, message: str, *, file: str, statement: str) -> None:
        super().__init__(message)
        self.file = file
        self.statement = statement
