"""build_config layering and the public surface of agentaudit.infra.kafka (no broker needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentaudit.infra import KafkaError, embedded, kafka
from agentaudit.infra.kafka import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS, KafkaConsumer, build_config
from agentaudit.infra.kafka.acls import CONTROL_RETENTION, Grant, grants
from agentaudit.settings import KafkaSecurity, KafkaSettings, TopicNames

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


# -- SASL / TLS from the one settings object ------------------------------------------------------

def test_default_is_plaintext_without_credentials() -> None:
    config = build_config(SETTINGS)
    assert config["security.protocol"] == "PLAINTEXT"
    assert not any(key.startswith(("sasl.", "ssl.")) for key in config)


def test_env_configures_sasl_for_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTAUDIT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("AGENTAUDIT_KAFKA_SASL_USERNAME", "agent")
    monkeypatch.setenv("AGENTAUDIT_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("AGENTAUDIT_KAFKA_SSL_CA_LOCATION", "/etc/agentaudit/ca.pem")
    settings = KafkaSettings(bootstrap_servers="kafka:9094")  # explicit fields and the env combine
    config = build_config(settings, {"linger.ms": 1}, defaults=PRODUCER_DEFAULTS)
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("agent", "s3cret")
    assert config["ssl.ca.location"] == "/etc/agentaudit/ca.pem"
    assert config["ssl.endpoint.identification.algorithm"] == "https"


def test_tls_client_certificate_and_hostname_check() -> None:
    security = KafkaSecurity(security_protocol="SSL", ssl_certificate_location="c.pem", ssl_key_location="k.pem",
                             ssl_key_password="kp", ssl_check_hostname=False)
    config = build_config(KafkaSettings(security=security))
    assert config["ssl.certificate.location"] == "c.pem"
    assert config["ssl.key.location"] == "k.pem"
    assert config["ssl.key.password"] == "kp"
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    assert "sasl.username" not in config


def test_overrides_still_win_over_security() -> None:
    security = KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    config = build_config(KafkaSettings(security=security), {"sasl.mechanism": "SCRAM-SHA-256"})
    assert config["sasl.mechanism"] == "SCRAM-SHA-256"


def test_plain_without_tls_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    security = KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
                             sasl_password="p")
    build_config(KafkaSettings(security=security))
    assert "sasl_plain_without_tls" in caplog.text


@pytest.mark.parametrize("fields", [
    {"security_protocol": "SASL_SSL"},  # no credentials
    {"security_protocol": "SASL_SSL", "sasl_username": "u"},  # no password
    {"sasl_username": "u", "sasl_password": "p"},  # credentials that PLAINTEXT would never send
    {"ssl_ca_location": "ca.pem"},  # a CA that PLAINTEXT would never use
    {"security_protocol": "SSL", "ssl_certificate_location": "c.pem"},  # certificate without key
])
def test_half_configured_security_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        KafkaSecurity(**fields)  # type: ignore[arg-type]  # the wrong values under test


# -- the ACLs ----------------------------------------------------------------------------------------

def _writes(who: str) -> set[str]:
    topics = TopicNames()
    by_topic = {getattr(topics, f): f for f in TopicNames.model_fields} | {"agentaudit.digests": "digests"}
    return {by_topic[g.name] for g in grants(topics) if g.principal == who and g.resource == "topic"
            and g.operation == "WRITE"}


def test_acls_let_agents_write_only_actions() -> None:
    assert _writes("agent") == {"actions"}
    assert _writes("dashboard") == {"control", "lifecycle"}
    assert _writes("operator") == {"control", "lifecycle", "actions"}
    assert _writes("sink") == {"incidents", "control", "dlq", "digests"}
    assert _writes("rules") == {"repartition", "incidents", "control"}


def test_acls_render_for_kafka_acls_sh() -> None:
    grant = Grant("rules", "group", "agentaudit-rules", "READ", prefixed=True)
    assert grant.cli_args() == ["--allow-principal", "User:rules", "--operation", "Read", "--group",
                                "agentaudit-rules", "--resource-pattern-type", "prefixed"]


def test_control_retention_matches_the_control_plane() -> None:
    from agentaudit.control import CONTROL_TOPIC_CONFIG

    assert dict(CONTROL_TOPIC_CONFIG) == CONTROL_RETENTION
