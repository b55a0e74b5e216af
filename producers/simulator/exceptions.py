"""Errors of the fleet simulator::

    AgentAuditError
    └── SimulatorError          a log could not be written or read, or producing failed
"""

from __future__ import annotations

from agentaudit.exceptions import AgentAuditError

__all__ = ["SimulatorError"]


class SimulatorError(AgentAuditError):
    """The simulator could not write, read or publish its events."""
