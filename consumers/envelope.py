"""A consumed message as the sink handles it: the Kafka context beside the decoded value, never inside it.

The rule engine judges :attr:`Envelope.record` alone, so what an evaluator sees is the action as the agent
sent it (plus what the sink derives, such as ``event_hash``); where it was read from (topic, partition,
offset) stays on the envelope for the store's position columns, insert tokens, digests and dead letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Envelope"]


@dataclass(slots=True)
class Envelope:
    """One decoded message and where it came from.

    :param topic: the topic it was read from.
    :param partition: its partition.
    :param offset: its offset in that partition.
    :param timestamp_ms: the broker timestamp (create or log-append time), epoch milliseconds.
    :param key: the message key as sent.
    :param value: the message value as sent: what a dead letter carries, byte for byte.
    :param record: the decoded value (mutable: the sink adds derived fields such as ``event_hash``).

    >>> envelope = Envelope("agentaudit.actions", 0, 42, 0, b"s-1", data, record)
    >>> evaluator.evaluate([envelope.record])
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    record: dict[str, Any]
