"""Errors of the infrastructure layer (Kafka, ClickHouse, embedded processes)::

    AgentAuditError
    └── InfraError                       a piece of infrastructure failed
        ├── KafkaError                   keeps the librdkafka error ``code`` name and ``retriable``
        ├── StoreError                   keeps the ClickHouse exception ``code`` (int or None)
        └── ProcessStartError            an embedded component (tansu, weed, store) did not come up

Library errors are caught at the edge and raised again as these, ``raise ... from exc``.
"""

from __future__ import annotations

from agentaudit.exceptions import AgentAuditError

__all__ = ["InfraError", "KafkaError", "ProcessStartError", "StoreError"]


class InfraError(AgentAuditError):
    """A broker, store or embedded process failed."""


class KafkaError(InfraError):
    """A Kafka operation failed.

    :param code: librdkafka error code name, e.g. ``"TOPIC_ALREADY_EXISTS"`` or ``"_MSG_TIMED_OUT"``;
        ``None`` when the failure did not come from librdkafka.
    :param retriable: whether trying the same operation again may succeed.
    """

    def __init__(self, message: str, *, code: str | None = None, retriable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable


class StoreError(InfraError):
    """A ClickHouse operation failed.

    :param code: ClickHouse exception code (e.g. 60 for UNKNOWN_TABLE), ``None`` when unknown
        (connection refused, timeout).
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ProcessStartError(InfraError):
    """An embedded process could not be started or did not become ready in time.

    The message carries the tail of the process log, which usually says why.
    """
