"""build_config layering and the public surface of agentaudit.infra.kafka (no broker needed)."""

from __future__ import annotations

import agentaudit.infra.embedded as embedded
import agentaudit.infra.kafka as kafka
from agentaudit.infra import KafkaError
from agentaudit.infra.kafka import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS, KafkaConsumer, build_config
from agentaudit.settings import KafkaSettings

SETTINGS = KafkaSettings(bootstrap_servers="127.0.0.1:1234")


def test_overrides_win_and_are_not_mutated() -> None:
    overrides = {"linger.ms": 50, "bootstrap.servers": "elsewhere:9092"}
    config = build_config(SETTINGS, overrides, defaults=PRODUCER_DEFAULTS)
    assert config["linger.ms"] == 50
    assert config["bootstrap.servers"] == "elsewhere:9092"
    assert config["compression.type"] == "lz4"
    config["linger.ms"] = 1
    assert overrides == {"linger.ms": 50, "bootstrap.servers": "elsewhere:9092"}
    assert PRODUCER_DEFAULTS["linger.ms"] == 5


def test_settings_fill_bootstrap_and_defaults_stay_below_settings() -> None:
    config = build_config(SETTINGS, None, defaults={"bootstrap.servers": "ignored:1", "acks": "1"})
    assert config["bootstrap.servers"] == "127.0.0.1:1234"
    assert config["acks"] == "1"


def test_consumer_commits_only_explicitly() -> None:
    assert CONSUMER_DEFAULTS["enable.auto.commit"] is False
    assert CONSUMER_DEFAULTS["enable.auto.offset.store"] is False


def test_bad_config_surfaces_as_kafka_error_on_first_use() -> None:
    consumer = KafkaConsumer(SETTINGS, "g", {"no.such.property": "x"})  # lazy: nothing happens yet
    try:
        consumer.subscribe(["t"])
    except KafkaError as exc:
        assert "no.such.property" in str(exc)
    else:
        raise AssertionError("an unknown librdkafka property was accepted")


def test_all_lists_every_public_name() -> None:
    for module in (kafka, embedded):
        public = {n for n in vars(module) if not n.startswith("_") and not isinstance(vars(module)[n], type(kafka))}
        assert set(module.__all__) == public - {"annotations"}, module.__name__
