"""Errors of the consumers (sink, migrations; rule errors are :mod:`agentaudit.rules.exceptions`)::

    AgentAuditError
    └── ConsumerError                    the sink or a migration could not do its job
        ├── MigrationError               a DDL statement failed; names the file and the statement
        └── NotifyError                  a notification could not be configured or delivered
            ├── RouteConfigError         an owners file's route is wrong; names the file, line and field
            └── DeliveryError            a receiver refused or did not answer (retried with back-off)

Bad input never raises out of the sink: undecodable messages go to the dead-letter topic.
"""

from __future__ import annotations

from agentaudit.exceptions import AgentAuditError

__all__ = ["ConsumerError", "DeliveryError", "MigrationError", "NotifyError", "RouteConfigError"]


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


class NotifyError(ConsumerError):
    """The notifier could not do its job."""


class RouteConfigError(NotifyError):
    """A route in an owners file is wrong.

    :param file: the owners file.
    :param line: 1-based line of the route, when known.
    :param field: the route's field at fault, e.g. ``teams.payments.routes[0].url``.
    """

    def __init__(self, message: str, *, file: str, line: int | None, field: str) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field}: {message}")
        self.file = file
        self.line = line
        self.field = field


class DeliveryError(NotifyError):
    """A receiver answered with an error status or not at all; ``status`` is the HTTP status, if any.

    :param retryable: 5xx, 429, 408 and network errors are retried; other 4xx are not (the payload or key is wrong).
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
