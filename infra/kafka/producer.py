"""The producer wrapper: lazy client, back-pressure retry, errors as ``KafkaError``."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

from confluent_kafka import KafkaError as _RawError
from confluent_kafka import KafkaException, Message, Producer

from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka._errors import from_exception, from_raw
from agentaudit.infra.kafka._types import ConfigValue, DeliveryCallback, Headers
from agentaudit.infra.kafka.config import PRODUCER_DEFAULTS, build_config
from agentaudit.settings import KafkaSettings

__all__ = ["KafkaProducer"]

_log = logging.getLogger("agentaudit.infra.kafka")


class KafkaProducer:
    """Publishes messages; the confluent ``Producer`` is created on first use.

    Delivery reports arrive through ``on_delivery`` callbacks while :meth:`poll` or
    :meth:`flush` runs (``produce`` also polls without waiting). Leaving the ``with`` block flushes.

    :param settings: broker address (``AGENTAUDIT_BOOTSTRAP_SERVERS``).
    :param config: librdkafka overrides, e.g. ``{"linger.ms": 50}``; defaults are
        :data:`~agentaudit.infra.kafka.PRODUCER_DEFAULTS`.
    :param buffer_timeout: seconds ``produce`` waits for room when the local queue is full, default 5.

    Example::

        with KafkaProducer(settings) as producer:
            producer.produce("agentaudit.actions", b"...", key=b"agent-1")
    """

    def __init__(self, settings: KafkaSettings, config: Mapping[str, ConfigValue] | None = None,
                 *, buffer_timeout: float = 5.0) -> None:
        # Idempotence per settings (off for tansu); the caller's config still wins.
        self._config = build_config(settings, config, defaults={
            **PRODUCER_DEFAULTS, "enable.idempotence": settings.enable_idempotence})
        # Without a per-message callback a failed delivery would otherwise vanish silently.
        self._config.setdefault("on_delivery", _log_failed_delivery)
        self._buffer_timeout = buffer_timeout
        self._producer: Producer | None = None
        self._closed = False

    @property
    def _client(self) -> Producer:
        if self._producer is None:
            if self._closed:
                raise KafkaError("producer is closed; create a new KafkaProducer", code=None)
            try:
                self._producer = Producer(self._config)
            except (KafkaException, ValueError, TypeError) as exc:
                raise from_exception(exc, "creating the Kafka producer",
                                     hint="check the librdkafka config names and values") from exc
        return self._producer

    def produce(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        headers: Headers | None = None,
        on_delivery: DeliveryCallback | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Queue one message. Blocks up to ``buffer_timeout`` while the local queue is full.

        :param partition: explicit partition; default lets the partitioner hash the key.
        :param timestamp: create time in epoch milliseconds; default now.
        :raises KafkaError: the queue stayed full (``code="_QUEUE_FULL"``, retriable), or the
            message was refused (too large, unknown partition, ...).
        """
        kwargs: dict[str, object] = {}
        if key is not None:
            kwargs["key"] = key
        if headers is not None:
            kwargs["headers"] = list(headers.items()) if isinstance(headers, Mapping) else headers
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp is not None:
            kwargs["timestamp"] = timestamp
        if on_delivery is not None:
            kwargs["on_delivery"] = _translating(on_delivery)
        client = self._client
        deadline: float | None = None
        while True:
            try:
                client.produce(topic, value, **kwargs)  # type: ignore[arg-type]  # only the options given
                break
            except BufferError as exc:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._buffer_timeout
                elif now >= deadline:
                    raise KafkaError(
                        f"producing to topic {topic!r} failed: local queue full for {self._buffer_timeout}s; "
                        "the broker is slow or down, or raise queue.buffering.max.messages",
                        code="_QUEUE_FULL", retriable=True) from exc
                client.poll(0.05)
            except (KafkaException, ValueError, TypeError) as exc:
                raise from_exception(exc, "producing", topic=topic, partition=partition) from exc
        client.poll(0)

    def produce_batch(self, topic: str,
                      messages: Sequence[tuple[bytes | None, bytes, DeliveryCallback]]) -> list[KafkaError | None]:
        """Queue ``(key, value, on_delivery)`` messages in one call, without waiting for room.

        One call queues the batch faster than a loop of :meth:`produce`, but librdkafka still enters
        the messages one at a time: a partition's share leaves in one request (when it fits
        ``batch.size``) unless this thread pauses mid-call for longer than ``linger.ms``, which is
        what a caller that needs whole batches sets large enough. Per message: None, or why it was
        not queued (its callback is then never called). Messages with headers take :meth:`produce`.
        """
        batch = [{"key": key, "value": value, "callback": _translating(on_delivery)}
                 for key, value, on_delivery in messages]
        try:
            self._client.produce_batch(topic, batch)
        except BufferError:
            full = KafkaError(f"producing to topic {topic!r} failed: local queue full", code="_QUEUE_FULL",
                              retriable=True)
            return [full] * len(batch)
        except (KafkaException, ValueError, TypeError) as exc:
            return [from_exception(exc, "producing a batch", topic=topic)] * len(batch)
        refusals: list[KafkaError | None] = [
            from_raw(m["_error"], "producing", topic=topic) if "_error" in m else None for m in batch]
        self._client.poll(0)
        return refusals

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks for up to ``timeout`` seconds; returns how many were served."""
        if self._producer is None:
            return 0
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` seconds for every queued message; returns how many are still queued."""
        if self._producer is None:
            return 0
        return self._producer.flush(timeout)

    def __len__(self) -> int:
        """Messages queued locally and not yet acknowledged."""
        return 0 if self._producer is None else len(self._producer)

    def close(self, timeout: float = 30.0) -> None:
        """Flush and release the client.

        :raises KafkaError: messages were still undelivered after ``timeout`` (``code="_MSG_TIMED_OUT"``).
        """
        producer, self._producer, self._closed = self._producer, None, True
        if producer is None:
            return
        remaining = producer.flush(timeout)
        if remaining:
            raise KafkaError(
                f"closing the producer: {remaining} message(s) still undelivered after {timeout}s; "
                "check that the broker is reachable", code="_MSG_TIMED_OUT", retriable=True)

    def __enter__(self) -> KafkaProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.close()
        except KafkaError:
            if exc is None:
                raise
            _log.warning("producer closed with undelivered messages while handling %r", exc)


def _log_failed_delivery(err: _RawError | None, msg: Message) -> None:
    if err is not None:
        _log.error("%s", from_raw(err, "delivery", topic=msg.topic(), partition=msg.partition()))


def _translating(callback: DeliveryCallback):  # type: ignore[no-untyped-def]  # returns librdkafka's untyped on_delivery
    def report(err: _RawError | None, msg: Message) -> None:
        if err is None:
            callback(None, msg)
        else:
            callback(from_raw(err, "delivery", topic=msg.topic(), partition=msg.partition()), msg)
    return report
