"""Errors of the ``agentaudit store`` server::

    AgentAuditError
    └── InfraError
        └── StoreError                   (agentaudit.infra.exceptions; keeps the ClickHouse ``code``)
            └── StoreLockedError         another process owns the chDB data directory
"""

from __future__ import annotations

from agentaudit.infra.exceptions import StoreError

__all__ = ["StoreLockedError"]


class StoreLockedError(StoreError):
    """The data directory is already served by another process (chDB allows one per directory)."""
