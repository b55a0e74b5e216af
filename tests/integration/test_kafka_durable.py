"""Durable embedded broker: tansu on SeaweedFS S3 keeps acknowledged messages through kill -9."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentaudit.infra.embedded import TansuBroker
from agentaudit.infra.kafka import KafkaAdmin, KafkaProducer, read_all
from agentaudit.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_s3_broker_survives_kill_9(embedded_broker_factory: Callable[..., TansuBroker]) -> None:
    broker = embedded_broker_factory(storage="s3")
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap)
    KafkaAdmin(settings).ensure_topics(["durable"], partitions=2)
    with KafkaProducer(settings) as producer:
        for i in range(100):
            producer.produce("durable", str(i).encode(), key=str(i % 5).encode())
    assert producer.flush(0) == 0

    pid = broker.pid
    broker.kill()
    assert not broker.running
    broker.start()
    assert broker.pid is not None and broker.pid != pid

    values = sorted(int(m.value()) for m in read_all(settings, "durable", expected=100, timeout=20))
    assert values == list(range(100))


def test_memory_broker_forgets_on_restart(embedded_broker_factory: Callable[..., TansuBroker]) -> None:
    broker = embedded_broker_factory()
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap)
    KafkaAdmin(settings).ensure_topics(["volatile"], partitions=1)
    with KafkaProducer(settings) as producer:
        producer.produce("volatile", b"gone")
    broker.kill()
    broker.start()
    assert "volatile" not in KafkaAdmin(settings).list_topics()
