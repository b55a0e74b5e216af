"""Errors of the producer SDK.

The SDK never raises into agent code because of telemetry trouble (a broker that is down, a
full spool, an odd value): that is logged and counted in :meth:`AuditClient.stats`. It raises
only for misconfiguration at construction time, and :class:`ActionBlocked` when a control
decision stops an action::

    AgentAuditError
    ├── ConfigError
    │   └── SdkConfigError        bad SDK settings or arguments, raised when the client is built
    ├── ProducerError             the SDK could not do what was asked (e.g. spool directory unusable)
    │   └── SpoolError            the on-disk spool is unusable or locked by another process
    └── ActionBlocked             a control decision (kill, pause, tool block, guard, approval) refused an action
"""

from __future__ import annotations

from agentaudit.control import ActionBlocked
from agentaudit.exceptions import AgentAuditError, ConfigError

__all__ = ["ActionBlocked", "ProducerError", "SdkConfigError", "SpoolError"]


class ProducerError(AgentAuditError):
    """The producer SDK could not do what was asked."""


class SdkConfigError(ProducerError, ConfigError):
    """An SDK setting or argument is invalid; raised when the client is built, never mid-stream."""


class SpoolError(ProducerError):
    """The on-disk spool directory cannot be created, locked or read."""
