"""The dead-letter topic: where a message the sink cannot store goes, with why in its headers.

A dead letter keeps the original key and value byte for byte, plus headers naming the
reason (``DecodeError.reason`` or another stable code), the error message and the source
topic, partition and offset, so it can be inspected and replayed.
"""

from __future__ import annotations

from agentaudit.consumers.exceptions import ConsumerError
from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka import KafkaProducer

__all__ = [
    "DeadLetters",
    "ERROR_HEADER",
    "REASON_HEADER",
    "SOURCE_OFFSET_HEADER",
    "SOURCE_PARTITION_HEADER",
    "SOURCE_TOPIC_HEADER",
    "dlq_headers",
]

REASON_HEADER = "x-agentaudit-reason"
ERROR_HEADER = "x-agentaudit-error"
SOURCE_TOPIC_HEADER = "x-agentaudit-source-topic"
SOURCE_PARTITION_HEADER = "x-agentaudit-source-partition"
SOURCE_OFFSET_HEADER = "x-agentaudit-source-offset"
_MAX_ERROR_BYTES = 2048


def dlq_headers(reason: str, error: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """The headers of one dead letter."""
    return [
        (REASON_HEADER, reason.encode()),
        (ERROR_HEADER, error.encode("utf-8", "replace")[:_MAX_ERROR_BYTES]),
        (SOURCE_TOPIC_HEADER, topic.encode()),
        (SOURCE_PARTITION_HEADER, str(partition).encode()),
        (SOURCE_OFFSET_HEADER, str(offset).encode()),
    ]


class DeadLetters:
    """Sends dead letters and confirms them before the sink commits past them.

    Other messages a batch produces (incidents) register with :meth:`track` and
    :meth:`delivered` so one :meth:`confirm` covers everything the batch sent.

    :param producer: the sink's producer.
    :param topic: dead-letter topic (``AGENTAUDIT_TOPIC_DLQ``).
    """

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self._producer = producer
        self.topic = topic
        self._failed: list[KafkaError] = []
        self._pending = 0

    def send(self, key: bytes | None, value: bytes | None, *, reason: str, error: str,
             topic: str, partition: int, offset: int) -> None:
        """Queue one dead letter; :meth:`confirm` waits for it."""
        self.track()
        self._producer.produce(
            self.topic, value, key=key, headers=dlq_headers(reason, error, topic, partition, offset),
            on_delivery=self.delivered,
        )

    def track(self) -> None:
        """Count one more message that :meth:`confirm` must see acknowledged."""
        self._pending += 1

    def confirm(self, timeout: float = 30.0) -> int:
        """Wait until every queued dead letter is acknowledged; returns how many were.

        :raises ConsumerError: one was refused or still unacknowledged: the batch must not be committed.
        """
        sent = self._pending
        if not sent:
            return 0
        remaining = self._producer.flush(timeout)
        failed, self._failed, self._pending = self._failed, [], 0
        if remaining or failed:
            detail = str(failed[0]) if failed else f"{remaining} still queued after {timeout}s"
            raise ConsumerError(f"messages of the batch (dead letters to {self.topic!r}, incidents) not acknowledged "
                                f"({detail}); the batch will be retried")
        return sent

    def delivered(self, error: KafkaError | None, _message: object) -> None:
        """Delivery callback for tracked messages."""
        if error is not None:
            self._failed.append(error)
