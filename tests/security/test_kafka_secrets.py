"""Attack: read a Kafka password from what agentaudit prints.

Whoever reads logs, tracebacks, ``agentaudit status`` output or a pasted settings dump (a
dashboard visitor, a log pipeline, a support ticket) must never see the SASL password or the TLS
key password. Each test sets the exact secret ``PASSWORD`` and looks for it everywhere it could leak.
"""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from agentaudit.infra.kafka import KafkaAdmin, KafkaError, KafkaProducer, build_config
from agentaudit.producers import AuditClient
from agentaudit.producers.exceptions import SdkConfigError
from agentaudit.settings import KafkaSecurity, KafkaSettings


@pytest.fixture(autouse=True)
def _no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start from no AGENTAUDIT_KAFKA_* (a CI tier may log everything in as admin)."""
    import os

    for name in [n for n in os.environ if n.startswith("AGENTAUDIT_KAFKA_")]:
        monkeypatch.delenv(name)


PASSWORD = "pw-7f3a9c-do-not-print"
KEY_PASSWORD = "keypw-51d0e2-do-not-print"


def _sasl(bootstrap: str = "127.0.0.1:1", **fields: object) -> KafkaSettings:
    values: dict[str, object] = {
        "security_protocol": "SASL_SSL", "sasl_username": "agent", "sasl_password": PASSWORD,
        "ssl_certificate_location": "/nonexistent/client.pem", "ssl_key_location": "/nonexistent/client.key",
        "ssl_key_password": KEY_PASSWORD}
    security = KafkaSecurity(**{**values, **fields})  # type: ignore[arg-type]  # the values under test
    return KafkaSettings(bootstrap_servers=bootstrap, security=security)


def _assert_clean(text: str) -> None:
    assert PASSWORD not in text
    assert KEY_PASSWORD not in text


def test_settings_print_masked_in_repr_str_and_dumps() -> None:
    settings = _sasl()
    for text in (repr(settings), str(settings), f"{settings}", repr(settings.security),
                 str(settings.model_dump()), json.dumps(settings.model_dump(mode="json")),
                 settings.model_dump_json()):
        _assert_clean(text)
        assert "agent" in text  # the user name is not a secret; the dump is not simply empty
    # ...while the client still gets the real password
    config = build_config(settings)
    assert config["sasl.password"] == PASSWORD
    assert config["ssl.key.password"] == KEY_PASSWORD


@pytest.mark.parametrize("security", [
    # a typo in the mechanism, with the password beside it
    {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-1", "sasl_username": "u", "sasl_password": PASSWORD},
    # credentials set, protocol forgotten: refused (it would connect without them)
    {"sasl_username": "u", "sasl_password": PASSWORD},
    # a wrong type for the password itself
    {"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": [PASSWORD]},
], ids=["bad-mechanism", "protocol-forgotten", "wrong-type"])
def test_validation_errors_do_not_quote_the_password(security: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as raised:
        KafkaSettings(security=security)  # type: ignore[arg-type]  # the wrong type under test
    _assert_clean(str(raised.value))
    _assert_clean(repr(raised.value))
    # errors() hands back the raw input by design; whoever serialises it must pass include_input=False
    _assert_clean(repr(raised.value.errors(include_input=False)))


def test_env_password_without_protocol_fails_closed_without_quoting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTAUDIT_KAFKA_SASL_USERNAME", "agent")
    monkeypatch.setenv("AGENTAUDIT_KAFKA_SASL_PASSWORD", PASSWORD)
    with pytest.raises(ValidationError) as raised:
        KafkaSettings()
    assert "AGENTAUDIT_KAFKA_SECURITY_PROTOCOL" in str(raised.value)
    _assert_clean(str(raised.value))
    # the SDK wraps the same error for agents: still masked
    with pytest.raises(SdkConfigError) as sdk:
        AuditClient("127.0.0.1:1", tenant="acme", agent="bot", ensure_topic=False)
    _assert_clean(str(sdk.value))


def test_debug_logs_of_every_client_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    """librdkafka at its most verbose (debug=all, which dumps the client config) logged through Python at DEBUG."""
    settings = _sasl(security_protocol="SASL_PLAINTEXT", ssl_certificate_location=None, ssl_key_location=None,
                     ssl_key_password=None)
    noisy = {"debug": "all", "log_level": 7}
    caplog.set_level(logging.DEBUG)
    assert KafkaAdmin(settings, noisy).ping(timeout=1.0) is False  # nothing listens on port 1
    producer = KafkaProducer(settings, {**noisy, "message.timeout.ms": 500})
    producer.produce("agentaudit.actions", b"x")
    producer.flush(2.0)
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "sasl.password = [redacted]" in text  # the config was dumped, with the secret left out
    assert len(caplog.records) > 50
    _assert_clean(text)


def test_client_errors_never_show_the_password() -> None:
    """A client that cannot even start (unreadable key file) reports why, without its secrets."""
    with pytest.raises(KafkaError) as raised:
        KafkaProducer(_sasl()).produce("agentaudit.actions", b"x")
    assert "ssl.certificate.location" in str(raised.value)
    _assert_clean(str(raised.value))
    _assert_clean(repr(raised.value))
