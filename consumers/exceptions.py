"""Errors of the consumers (sink, migrations, rules)::

    AgentAuditError
    └── ConsumerError                    the sink or a migration could not do its job
        ├── MigrationError               a DDL statement failed; names the file and the statement
        └── RuleError                    a rule file is wrong; names the file, line and rule

Bad input never raises out of the sink: undecodable messages go to the dead-letter topic.
"""

from __future__ import annotations

from agentaudit.exceptions import AgentAuditError

__all__ = ["ConsumerError", "MigrationError", "RuleError"]


class ConsumerError(AgentAuditError):
    """The sink, a migration or the rule engine failed."""


class MigrationError(ConsumerError):
    """A schema migration statement failed.

    :param file: the DDL file (name) that holds the statement.
    :param statement: the statement, placeholders substituted.
    """

    def __init__(self, message: str, *, file: str, statement: str) -> None:
        super().__init__(message)
        self.file = file
        self.statement = statement


class RuleError(ConsumerError):
    """A rule cannot be loaded or evaluated.

    :param file: the rule file, when known.
    :param line: 1-based line in ``file``, when known.
    :param rule: the rule id, when known.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, rule: str | None = None) -> None:
        where = ":".join(str(part) for part in (file, line) if part is not None)
        prefix = f"{where}: " if where else ""
        prefix += f"rule {rule!r}: " if rule else ""
        super().__init__(prefix + message)
        self.file = file
        self.line = line
        self.rule = rule
