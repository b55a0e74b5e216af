"""Errors of the dashboard.

::

    AgentAuditError
    └── DashboardError            the dashboard could not do what it was asked
        ├── AuthError             no signed-in actor, or an unknown user or bad password
        └── PublishError          a lifecycle event did not reach Kafka (keeps the Kafka ``code``)
"""

from __future__ import annotations

from agentaudit.exceptions import AgentAuditError

__all__ = ["AuthError", "DashboardError", "PublishError"]


class DashboardError(AgentAuditError):
    """Base of the dashboard's errors."""


class AuthError(DashboardError):
    """The action needs a signed-in actor and there is none (or the credentials are wrong)."""


class PublishError(DashboardError):
    """A lifecycle event was not acknowledged by the broker; ``code`` is the Kafka error code."""

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
