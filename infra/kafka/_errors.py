"""Turns confluent-kafka errors into ``agentaudit.infra.KafkaError`` at the edge."""

from __future__ import annotations

from confluent_kafka import KafkaError as _RawError
from confluent_kafka import KafkaException as _RawException

from agentaudit.infra.exceptions import KafkaError

__all__ = ["from_exception", "from_raw", "where"]


def where(topic: str | None = None, partition: int | None = None, offset: int | None = None) -> str:
    """``topic 'x' partition 2 offset 7``, leaving out what is unknown."""
    parts = []
    if topic is not None:
        parts.append(f"topic {topic!r}")
    if partition is not None and partition >= 0:
        parts.append(f"partition {partition}")
    if offset is not None and offset >= 0:
        parts.append(f"offset {offset}")
    return " ".join(parts)


def from_raw(err: _RawError, action: str, *, topic: str | None = None, partition: int | None = None,
             offset: int | None = None, hint: str = "") -> KafkaError:
    """Our error for a raw librdkafka error, naming the action and where it happened."""
    place = where(topic, partition, offset)
    message = f"{action} failed{' on ' + place if place else ''}: {err.name()}: {err.str()}"
    if hint:
        message += f"; {hint}"
    return KafkaError(message, code=err.name(), retriable=bool(err.retriable()))


def from_exception(exc: BaseException, action: str, *, topic: str | None = None,
                   partition: int | None = None, hint: str = "") -> KafkaError:
    """Our error for an exception raised by confluent-kafka (``KafkaException`` or a plain one)."""
    if isinstance(exc, _RawException) and exc.args and isinstance(exc.args[0], _RawError):
        return from_raw(exc.args[0], action, topic=topic, partition=partition, hint=hint)
    place = where(topic, partition)
    message = f"{action} failed{' on ' + place if place else ''}: {type(exc).__name__}: {exc}"
    if hint:
        message += f"; {hint}"
    return KafkaError(message, code=None, retriable=False)
