"""Reading a whole topic, for tests, tools and replays.

Tansu reports a wrong high watermark (last batch base offset + 1), so the end of a topic is
found by waiting until nothing new arrives, not by trusting watermarks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, Message

from agentaudit.infra.kafka._types import ConfigValue
from agentaudit.infra.kafka.admin import KafkaAdmin
from agentaudit.infra.kafka.consumer import KafkaConsumer
from agentaudit.settings import KafkaSettings

__all__ = ["read_all"]


def read_all(settings: KafkaSettings, topic: str, timeout: float = 10.0, *, idle: float = 1.0,
             expected: int | None = None, config: Mapping[str, ConfigValue] | None = None) -> list[Message]:
    """Every message of ``topic`` from the beginning, in per-partition offset order.

    Stops when ``expected`` messages have arrived, when nothing arrived for ``idle`` seconds,
    or after ``timeout`` seconds, whichever comes first. Commits nothing.

    :param expected: stop as soon as this many messages were read, default none.
    :param config: librdkafka overrides for the reading consumer.
    """
    partitions = KafkaAdmin(settings).partitions_for(topic, timeout=timeout)
    messages: list[Message] = []
    start = time.monotonic()
    deadline = start + timeout
    last = start
    with KafkaConsumer(settings, f"agentaudit-read-{uuid.uuid4().hex}", config) as consumer:
        consumer.assign([(topic, p, OFFSET_BEGINNING) for p in partitions])
        while True:
            now = time.monotonic()
            if now >= deadline or now - last >= idle:
                break
            if expected is not None and len(messages) >= expected:
                break
            wanted = 1000 if expected is None else max(1, min(1000, expected - len(messages)))
            batch = consumer.consume_batch(wanted, timeout=min(0.2, max(0.0, deadline - now)))
            if batch:
                messages.extend(batch)
                last = time.monotonic()
    return messages
