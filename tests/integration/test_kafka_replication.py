"""Topics agentaudit creates are replicated as the cluster allows: ``min(3, brokers)`` replicas and
``min.insync.replicas=2`` with 3 (one broker may die without losing or refusing an ``acks=all`` write);
one replica and the broker's default on a single broker. Explicit settings win."""

from __future__ import annotations

import uuid

import pytest

from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka import KafkaAdmin
from agentaudit.producers import AuditClient
from agentaudit.settings import KafkaSettings
from tests.fixtures.broker import external_bootstrap

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def _brokers(admin: KafkaAdmin) -> int:
    return len(admin._client.list_topics(timeout=10).brokers)  # the count the admin itself uses


def test_default_replication_follows_the_cluster(kafka_admin: KafkaAdmin):
    brokers = _brokers(kafka_admin)
    name = f"repl-{uuid.uuid4().hex[:12]}"
    assert kafka_admin.ensure_topics([name], partitions=3) == [name]
    layout = kafka_admin.describe_partitions(name)
    assert sorted(layout) == [0, 1, 2]
    assert {len(replicas) for _, replicas, _ in layout.values()} == {min(3, brokers)}
    if brokers >= 3:
        assert kafka_admin.topic_config(name)["min.insync.replicas"] == "2"
        # the leaders are spread: no broker leads every partition
        assert len({leader for leader, _, _ in layout.values()}) > 1


def test_explicit_replication_settings_win(kafka_settings: KafkaSettings):
    admin = KafkaAdmin(kafka_settings.model_copy(update={"replication_factor": 1, "min_insync_replicas": 1}))
    name = f"repl1-{uuid.uuid4().hex[:12]}"
    admin.ensure_topics([name], partitions=1)
    assert [len(r) for _, r, _ in admin.describe_partitions(name).values()] == [1]
    if _brokers(admin) >= 3:
        assert admin.topic_config(name)["min.insync.replicas"] == "1"
    if external_bootstrap():  # Apache Kafka refuses more replicas than brokers (tansu stores one copy anyway)
        too_many = KafkaAdmin(kafka_settings.model_copy(update={"replication_factor": _brokers(admin) + 1}))
        with pytest.raises(KafkaError, match="INVALID_REPLICATION_FACTOR"):
            too_many.ensure_topics([f"repl9-{uuid.uuid4().hex[:12]}"], partitions=1, timeout=10)


@pytest.mark.parametrize("idempotent", [False, True])
def test_sdk_producer_is_idempotent_only_when_asked(idempotent: bool, tmp_path):
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9", enable_idempotence=idempotent)
    client = AuditClient(kafka=kafka, tenant="acme", agent="a", spool_dir=str(tmp_path))
    try:
        config = client._worker.producer_config  # what the SDK hands librdkafka
    finally:
        client.close(1)
    assert config["acks"] == "all" and config["enable.idempotence"] is idempotent
    # librdkafka refuses idempotence with retries=0; without it the SDK never retries behind its read-back
    assert (config["retries"] >= 1) if idempotent else (config["retries"] == 0)
    assert config["max.in.flight.requests.per.connection"] == 1
