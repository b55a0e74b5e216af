"""Type aliases of the Kafka layer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

from confluent_kafka import Message, TopicPartition

if TYPE_CHECKING:
    from agentaudit.infra.exceptions import KafkaError
    from agentaudit.infra.kafka.consumer import KafkaConsumer

__all__ = [
    "ConfigValue",
    "DeliveryCallback",
    "Headers",
    "Offset",
    "RebalanceCallback",
]

#: A librdkafka configuration value (dotted names keep their librdkafka spelling).
ConfigValue: TypeAlias = str | int | float | bool | Callable[..., object] | logging.Logger

#: Message headers as Kafka carries them: ordered (name, value) pairs, or a mapping.
Headers: TypeAlias = Sequence[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]

#: ``(topic, partition, next_offset)``: the offset of the next message to read, as Kafka commits it.
Offset: TypeAlias = tuple[str, int, int]

#: Called once per produced message from ``poll``/``flush``: ``(error or None, message)``.
DeliveryCallback: TypeAlias = Callable[["KafkaError | None", Message], None]

#: Called on partition assignment or revocation: ``(consumer, partitions)``.
RebalanceCallback: TypeAlias = Callable[["KafkaConsumer", list[TopicPartition]], None]
