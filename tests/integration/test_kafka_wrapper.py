"""The Kafka wrapper against a real broker (embedded tansu, or Apache Kafka in CI)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agentaudit.infra import KafkaError
from agentaudit.infra.kafka import KafkaAdmin, KafkaConsumer, KafkaProducer, Message, read_all
from agentaudit.settings import KafkaSettings
from tests.fixtures.broker import test_consumer_config

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def _consume(consumer: KafkaConsumer, count: int, timeout: float = 30.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += consumer.consume_batch(count - len(got), timeout=0.5)
    return got


def _produce(settings: KafkaSettings, topic: str, count: int) -> list[tuple[KafkaError | None, int, int]]:
    reports: list[tuple[KafkaError | None, int, int]] = []
    with KafkaProducer(settings) as producer:
        for i in range(count):
            producer.produce(topic, f"value-{i}".encode(), key=f"key-{i % 7}".encode(),
                             headers=[("seq", str(i).encode()), ("kind", b"test")],
                             on_delivery=lambda err, msg: reports.append((err, msg.partition(), msg.offset())))
    return reports


def test_round_trip_keeps_keys_headers_and_per_key_partition(
        kafka_settings: KafkaSettings, topic_factory: Callable[..., str], group_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=3)
    reports = _produce(kafka_settings, topic, 60)
    assert [err for err, _, _ in reports if err is not None] == []
    assert len(reports) == 60

    with KafkaConsumer(kafka_settings, group_factory(), test_consumer_config()) as consumer:
        consumer.subscribe([topic])
        messages = _consume(consumer, 60)

    assert sorted(int(m.headers()[0][1]) for m in messages) == list(range(60))
    assert {m.partition() for m in messages} == {0, 1, 2}
    partition_of_key: dict[bytes, int] = {}
    for m in messages:
        seq = int(dict(m.headers())["seq"])
        assert m.value() == f"value-{seq}".encode()
        assert m.key() == f"key-{seq % 7}".encode()
        assert dict(m.headers())["kind"] == b"test"
        assert partition_of_key.setdefault(m.key(), m.partition()) == m.partition()
    # Per partition, offsets come in order and follow produce order.
    for p in range(3):
        seqs = [int(dict(m.headers())["seq"]) for m in messages if m.partition() == p]
        assert seqs == sorted(seqs)


def test_new_consumer_resumes_from_committed_offsets(
        kafka_settings: KafkaSettings, kafka_admin: KafkaAdmin, topic_factory: Callable[..., str],
        group_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=3)
    group = group_factory()
    _produce(kafka_settings, topic, 30)

    with KafkaConsumer(kafka_settings, group, test_consumer_config()) as first:
        first.subscribe([topic])
        messages = _consume(first, 30)
        assert len(messages) == 30
        done = [m for m in messages if int(dict(m.headers())["seq"]) < 12]
        first.commit(done)
        expected = {}
        for m in done:
            key = (m.topic(), m.partition())
            expected[key] = max(expected.get(key, 0), m.offset() + 1)
        committed = first.committed([(topic, p) for p in range(3)])
    assert {k: v for k, v in committed.items() if v is not None} == expected
    assert {k: v for k, v in kafka_admin.committed_offsets(group, [topic]).items() if v is not None} == expected

    with KafkaConsumer(kafka_settings, group, test_consumer_config()) as second:
        second.subscribe([topic])
        rest = _consume(second, 18)
        assert second.consume_batch(10, timeout=1.0) == []
    assert sorted(int(dict(m.headers())["seq"]) for m in rest) == list(range(12, 30))


def test_commit_accepts_offset_tuples_and_empty_input(
        kafka_settings: KafkaSettings, kafka_admin: KafkaAdmin, topic_factory: Callable[..., str],
        group_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=1)
    group = group_factory()
    _produce(kafka_settings, topic, 5)
    with KafkaConsumer(kafka_settings, group, test_consumer_config()) as consumer:
        consumer.assign([(topic, 0, 0)])
        assert len(_consume(consumer, 5)) == 5
        consumer.commit([])
        consumer.commit([(topic, 0, 3)])
    assert kafka_admin.committed_offsets(group, [topic]) == {(topic, 0): 3}


def test_ensure_topics_is_idempotent(kafka_admin: KafkaAdmin, group_factory: Callable[..., str]) -> None:
    name = group_factory("topic")
    assert kafka_admin.ensure_topics([name, name], partitions=2) == [name]
    assert kafka_admin.ensure_topics([name], partitions=5) == []
    assert kafka_admin.list_topics()[name] == 2
    assert kafka_admin.partitions_for(name) == [0, 1]


def test_read_all_returns_every_message(kafka_settings: KafkaSettings, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=3)
    _produce(kafka_settings, topic, 25)
    messages = read_all(kafka_settings, topic, expected=25, timeout=15)
    assert sorted(int(dict(m.headers())["seq"]) for m in messages) == list(range(25))
    assert len(read_all(kafka_settings, topic, idle=0.5)) == 25


def test_oversized_message_raises_kafka_error_with_code(
        kafka_settings: KafkaSettings, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=1)
    with KafkaProducer(kafka_settings, {"message.max.bytes": 10_000}) as producer, pytest.raises(KafkaError) as info:
        producer.produce(topic, b"x" * 20_000)
    assert info.value.code == "MSG_SIZE_TOO_LARGE"
    assert info.value.retriable is False
    assert topic in str(info.value)


def test_delivery_failure_reaches_callback_as_kafka_error(
        kafka_settings: KafkaSettings, topic_factory: Callable[..., str]) -> None:
    """An unknown partition is a ``KafkaError`` with its code and place, whichever way it is found: through
    the delivery callback when the producer learns the topic later, or at once when its first metadata
    answer already came (the CI run on 6d234b5 raised there)."""
    topic = topic_factory(partitions=1)
    errors: list[KafkaError | None] = []
    with KafkaProducer(kafka_settings) as producer:
        try:
            producer.produce(topic, b"x", partition=7, on_delivery=lambda err, _msg: errors.append(err))
        except KafkaError as exc:
            errors.append(exc)
    assert len(errors) == 1
    assert isinstance(errors[0], KafkaError)
    assert errors[0].code == "_UNKNOWN_PARTITION"
    assert "partition 7" in str(errors[0])


def test_unknown_topic_and_unreachable_broker(kafka_admin: KafkaAdmin, group_factory: Callable[..., str]) -> None:
    with pytest.raises(KafkaError) as info:
        kafka_admin.partitions_for(group_factory("missing"))
    assert info.value.code == "UNKNOWN_TOPIC_OR_PART"
    assert kafka_admin.ping(timeout=5) is True
    assert KafkaAdmin(KafkaSettings(bootstrap_servers="127.0.0.1:1")).ping(timeout=0.5) is False


def test_closed_producer_refuses_more_work(kafka_settings: KafkaSettings, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=1)
    producer = KafkaProducer(kafka_settings)
    producer.produce(topic, b"one")
    producer.close()
    with pytest.raises(KafkaError, match="closed"):
        producer.produce(topic, b"two")
    assert len(read_all(kafka_settings, topic, expected=1)) == 1


def test_close_serves_the_last_rebalance_events_before_librdkafka_closes(
        kafka_settings: KafkaSettings, topic_factory: Callable[..., str], group_factory: Callable[..., str]) -> None:
    """An assignment that librdkafka serves inside its own close() can block there for ever, GIL held
    (confluentinc/librdkafka#4884; a rules worker hung so on the Apache Kafka tier). close() unsubscribes
    and serves the group's events first: the revoke reaches the callback while the client is still open."""
    topic = topic_factory(partitions=3)
    consumer = KafkaConsumer(kafka_settings, group_factory(), config=test_consumer_config())
    seen: list[tuple[str, int, bool]] = []

    def record(kind: str) -> Callable[[KafkaConsumer, list], None]:
        return lambda c, parts: seen.append((kind, len(parts), c._consumer is not None))

    consumer.subscribe([topic], on_assign=record("assign"), on_revoke=record("revoke"))
    deadline = time.monotonic() + 30
    while not consumer.assignment():
        consumer.consume_batch(10, timeout=0.2)
        assert time.monotonic() < deadline, "the consumer was never assigned its partitions"
    began = time.monotonic()
    consumer.close()
    took = time.monotonic() - began
    assert seen == [("assign", 3, True), ("revoke", 3, True)], seen
    assert took < 5, f"close took {took:.1f}s"
