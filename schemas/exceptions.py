"""Errors of the event contract::

    AgentAuditError
    └── SchemaError
        ├── EncodeError                 a record does not fit its schema
        └── DecodeError                 a message cannot be read; `.reason` is a stable code
            ├── UnknownFingerprintError  reason "unknown_fingerprint"
            └── MessageTooLargeError     reason "oversized"

``DecodeError.reason`` is what the dead-letter topic records in its headers.
"""

from __future__ import annotations

from agentaudit.exceptions import AgentAuditError

__all__ = ["DecodeError", "EncodeError", "MessageTooLargeError", "SchemaError", "UnknownFingerprintError"]


class SchemaError(AgentAuditError):
    """The event contract was violated."""


class EncodeError(SchemaError):
    """A record could not be encoded with its schema."""


class DecodeError(SchemaError):
    """A message could not be decoded.

    :param reason: stable machine-readable code: ``undecodable``, ``bad_magic``,
        ``unknown_fingerprint``, ``oversized``, ``invalid``.
    """

    def __init__(self, message: str, *, reason: str = "undecodable") -> None:
        super().__init__(message)
        self.reason = reason


class UnknownFingerprintError(DecodeError):
    """The writer schema's fingerprint is not one this reader knows."""

    def __init__(self, fingerprint: str) -> None:
        super().__init__(
            f"unknown writer schema fingerprint {fingerprint}: upgrade agentaudit or register the schema",
            reason="unknown_fingerprint",
        )
        self.fingerprint = fingerprint


class MessageTooLargeError(DecodeError):
    """A message exceeds the configured maximum size."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"message of {size} bytes exceeds the limit of {limit} bytes (AGENTAUDIT_MAX_MESSAGE_BYTES)",
            reason="oversized",
        )
        self.size = size
        self.limit = limit
