"""The consumer wrapper: explicit commits, batch consumption, errors as ``KafkaError``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as _RawError

from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka._errors import from_exception, from_raw
from agentaudit.infra.kafka._types import ConfigValue, Offset, RebalanceCallback
from agentaudit.infra.kafka.config import CONSUMER_DEFAULTS, build_config
from agentaudit.settings import KafkaSettings

__all__ = ["KafkaConsumer", "to_topic_partitions"]

_log = logging.getLogger("agentaudit.infra.kafka")
_LEAVE_S = 5.0  # at most this long serving the last rebalance events before a close

# Errors a consumer reports inline that librdkafka recovers from by itself: log, keep going.
_TRANSIENT = frozenset({
    "_PARTITION_EOF", "_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "UNKNOWN_TOPIC_OR_PART",
    "NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "REQUEST_TIMED_OUT", "NOT_COORDINATOR",
    "COORDINATOR_NOT_AVAILABLE", "COORDINATOR_LOAD_IN_PROGRESS",
})


def to_topic_partitions(offsets: Iterable[Offset | Message | TopicPartition]) -> list[TopicPartition]:
    """``TopicPartition`` list from ``(topic, partition, next_offset)`` tuples, messages or partitions.

    A message commits the offset *after* it (``offset + 1``), as Kafka expects.
    """
    result: list[TopicPartition] = []
    for item in offsets:
        if isinstance(item, TopicPartition):
            result.append(item)
        elif isinstance(item, Message):
            topic, partition, offset = item.topic(), item.partition(), item.offset()
            if topic is None or partition is None or offset is None:  # an error event, not a record
                raise ValueError(f"a message without a position has no offset to commit: {item.error()}")
            result.append(TopicPartition(topic, partition, offset + 1))
        else:
            topic, partition, offset = item
            result.append(TopicPartition(topic, partition, offset))
    return result


class KafkaConsumer:
    """Reads messages in batches and commits only what the caller says it has processed.

    ``enable.auto.commit`` and ``enable.auto.offset.store`` are off: call :meth:`commit` after
    the batch is safely handled (at-least-once). The confluent ``Consumer`` is created on first use.

    :param settings: broker address (``AGENTAUDIT_BOOTSTRAP_SERVERS``).
    :param group_id: consumer group.
    :param config: librdkafka overrides, e.g. ``{"session.timeout.ms": 6000}``; defaults are
        :data:`~agentaudit.infra.kafka.CONSUMER_DEFAULTS`.

    Example::

        with KafkaConsumer(settings, "agentaudit-sink") as consumer:
            consumer.subscribe([settings.topics.actions])
            while running:
                batch = consumer.consume_batch(500, timeout=1.0)
                handle(batch)
                consumer.commit(batch)
    """

    def __init__(self, settings: KafkaSettings, group_id: str,
                 config: Mapping[str, ConfigValue] | None = None) -> None:
        self._config = build_config(settings, config, defaults=CONSUMER_DEFAULTS)
        self._config["group.id"] = group_id
        self.group_id = group_id
        self._consumer: Consumer | None = None
        self._closed = False
        self._subscribed = False

    @property
    def _client(self) -> Consumer:
        if self._consumer is None:
            if self._closed:
                raise KafkaError(f"consumer of group {self.group_id!r} is closed; create a new one")
            try:
                self._consumer = Consumer(self._config)
            except (KafkaException, ValueError, TypeError) as exc:
                raise from_exception(exc, f"creating a Kafka consumer for group {self.group_id!r}",
                                     hint="check the librdkafka config names and values") from exc
        return self._consumer

    def subscribe(self, topics: Sequence[str], on_assign: RebalanceCallback | None = None,
                  on_revoke: RebalanceCallback | None = None) -> None:
        """Join the group for ``topics``; callbacks run inside :meth:`consume_batch`."""
        kwargs: dict[str, object] = {}
        if on_assign is not None:
            kwargs["on_assign"] = lambda _c, parts: on_assign(self, parts)
        if on_revoke is not None:
            kwargs["on_revoke"] = lambda _c, parts: on_revoke(self, parts)
        try:
            self._client.subscribe(list(topics), **kwargs)  # type: ignore[arg-type]  # only the callbacks given
        except (KafkaException, ValueError, TypeError) as exc:
            raise from_exception(exc, f"subscribing group {self.group_id!r} to {list(topics)}") from exc
        self._subscribed = True

    def assign(self, partitions: Iterable[Offset | TopicPartition]) -> None:
        """Read fixed partitions without group rebalancing; ``(topic, partition, offset)`` tuples
        may use ``OFFSET_BEGINNING``/``OFFSET_END``."""
        parts = to_topic_partitions(partitions)
        try:
            self._client.assign(parts)
        except (KafkaException, ValueError, TypeError) as exc:
            raise from_exception(exc, f"assigning {len(parts)} partition(s)") from exc

    def assignment(self) -> list[TopicPartition]:
        """The partitions currently assigned to this consumer."""
        if self._consumer is None:
            return []
        return self._consumer.assignment()

    def consume_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_messages`` messages, waiting at most ``timeout`` seconds.

        Returns confluent-kafka ``Message`` objects (``topic()``, ``partition()``, ``offset()``,
        ``key()``, ``value()``, ``headers()``, ``timestamp()``); messages carrying an error are
        never returned. Transient errors are logged and skipped.

        :raises KafkaError: a fatal or non-recoverable error (authorization, broken config, ...).
        """
        try:
            messages = self._client.consume(max_messages, timeout)
        except (KafkaException, RuntimeError) as exc:
            raise from_exception(exc, f"consuming for group {self.group_id!r}") from exc
        for i, msg in enumerate(messages):
            if msg.error() is not None:
                return self._without_errors(messages, i)
        return messages

    def _without_errors(self, messages: list[Message], first: int) -> list[Message]:
        clean = messages[:first]
        for msg in messages[first:]:
            err: _RawError | None = msg.error()
            if err is None:
                clean.append(msg)
                continue
            if not err.fatal() and (err.name() in _TRANSIENT or err.retriable()):
                if err.code() != _RawError._PARTITION_EOF:
                    _log.warning("consumer %s: %s on topic %r partition %s (retrying)",
                                 self.group_id, err.str(), msg.topic(), msg.partition())
                continue
            raise from_raw(err, f"consuming for group {self.group_id!r}", topic=msg.topic(),
                           partition=msg.partition(), offset=msg.offset())
        return clean

    def commit(self, offsets: Iterable[Offset | Message | TopicPartition],
               asynchronous: bool = False) -> None:
        """Commit ``(topic, partition, next_offset)`` tuples, or the offset after each message.

        For messages, only the highest offset per partition is sent. An empty input does nothing.

        :raises KafkaError: the commit failed for the group or for one partition.
        """
        latest: dict[tuple[str, int], TopicPartition] = {}
        for tp in to_topic_partitions(offsets):
            key = (tp.topic, tp.partition)
            seen = latest.get(key)
            if seen is None or tp.offset > seen.offset:
                latest[key] = tp
        if not latest:
            return
        parts = list(latest.values())
        try:
            # a bool at run time; the stub's overloads want a literal to pick the return type
            result = self._client.commit(offsets=parts, asynchronous=asynchronous)  # type: ignore[call-overload]  # see above
        except (KafkaException, RuntimeError) as exc:
            raise from_exception(exc, f"committing offsets of group {self.group_id!r}",
                                 hint="the group may have rebalanced; the batch will be redelivered") from exc
        for tp in result or ():
            if tp.error is not None:
                raise from_raw(tp.error, f"committing offsets of group {self.group_id!r}",
                               topic=tp.topic, partition=tp.partition, offset=tp.offset)

    def committed(self, partitions: Iterable[tuple[str, int] | TopicPartition],
                  timeout: float = 10.0) -> dict[tuple[str, int], int | None]:
        """The group's committed next-offset per ``(topic, partition)``; ``None`` where nothing is committed."""
        parts = [p if isinstance(p, TopicPartition) else TopicPartition(p[0], p[1]) for p in partitions]
        try:
            result = self._client.committed(parts, timeout=timeout)
        except (KafkaException, RuntimeError) as exc:
            raise from_exception(exc, f"reading committed offsets of group {self.group_id!r}") from exc
        out: dict[tuple[str, int], int | None] = {}
        for tp in result:
            if tp.error is not None:
                raise from_raw(tp.error, f"reading committed offsets of group {self.group_id!r}",
                               topic=tp.topic, partition=tp.partition)
            out[(tp.topic, tp.partition)] = None if tp.offset == OFFSET_INVALID else tp.offset
        return out

    def high_watermarks(self, partitions: Iterable[tuple[str, int] | TopicPartition]) -> dict[tuple[str, int], int]:
        """The last high watermark seen in fetch responses per ``(topic, partition)``, without a request.

        Partitions not fetched yet are left out. On tansu the broker reports last batch base
        offset + 1, so the value can trail the true end of the partition by up to one batch.
        """
        out: dict[tuple[str, int], int] = {}
        for tp in _partitions(partitions):
            try:
                _low, high = self._client.get_watermark_offsets(tp, cached=True)
            except (KafkaException, RuntimeError):
                continue
            if high is not None and high >= 0:
                out[(tp.topic, tp.partition)] = high
        return out

    def pause(self, partitions: Iterable[tuple[str, int] | TopicPartition]) -> None:
        """Stop fetching from ``partitions`` (back-pressure) while staying in the group."""
        self._client.pause(_partitions(partitions))

    def resume(self, partitions: Iterable[tuple[str, int] | TopicPartition]) -> None:
        """Fetch again from paused ``partitions``."""
        self._client.resume(_partitions(partitions))

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read ``partition`` from ``offset`` next (the partition must be assigned)."""
        try:
            self._client.seek(TopicPartition(topic, partition, offset))
        except (KafkaException, RuntimeError) as exc:
            raise from_exception(exc, f"seeking to offset {offset}", topic=topic, partition=partition) from exc

    def close(self) -> None:
        """Leave the group and release the client (uncommitted work will be redelivered)."""
        try:
            if self._consumer is not None and self._subscribed:
                self._leave(self._consumer)
        finally:
            consumer, self._consumer, self._closed = self._consumer, None, True
            if consumer is not None:
                try:
                    consumer.close()
                except (KafkaException, RuntimeError) as exc:
                    raise from_exception(exc, f"closing consumer of group {self.group_id!r}") from exc

    def _leave(self, consumer: Consumer) -> None:
        """Unsubscribe and serve the group's last rebalance events before ``close()``.

        An assignment that librdkafka serves inside ``close()`` can block its ``assign()`` for ever,
        with the GIL held (confluentinc/librdkafka#4884): a rules worker hung so in CI. Served here,
        outside the close, it completes; messages polled meanwhile are dropped, uncommitted.
        """
        try:
            consumer.unsubscribe()
            deadline = time.monotonic() + _LEAVE_S
            while time.monotonic() < deadline:  # until a poll finds nothing queued and nothing is assigned
                if consumer.poll(0.05) is None and not consumer.assignment():
                    break
        except (KafkaException, RuntimeError) as exc:  # close() still releases the client
            _log.debug("consumer %s: leaving the group before close: %s", self.group_id, exc)

    def __enter__(self) -> KafkaConsumer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _partitions(partitions: Iterable[tuple[str, int] | TopicPartition]) -> list[TopicPartition]:
    return [p if isinstance(p, TopicPartition) else TopicPartition(p[0], p[1]) for p in partitions]
