"""librdkafka configuration: our defaults, the settings, then the caller's overrides.

Dotted librdkafka names pass through unchanged, so anything librdkafka documents can be set.
SASL and TLS come from ``settings.security`` here and nowhere else, so every client of agentaudit
authenticates the same way. The returned dict holds the password in clear (librdkafka needs it):
it is for the client constructor only, never for logs or error messages.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from agentaudit.infra.kafka._types import ConfigValue
from agentaudit.settings import KafkaSecurity, KafkaSettings

__all__ = ["CONSUMER_DEFAULTS", "PRODUCER_DEFAULTS", "build_config", "security_config"]

_log = logging.getLogger("agentaudit.infra.kafka")
# librdkafka's own log lines go through Python logging instead of straight to stderr.
_client_log = logging.getLogger("agentaudit.infra.kafka.librdkafka")

#: Throughput-friendly producer defaults. Idempotence follows ``KafkaSettings.enable_idempotence``
#: (off by default: tansu has no producer ids; the event stream's sequence numbers and hash chain
#: catch duplicates either way).
PRODUCER_DEFAULTS: Final[Mapping[str, ConfigValue]] = {
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "enable.idempotence": False,
    "message.timeout.ms": 30_000,
}

#: Consumers commit explicitly, after the batch is processed (at-least-once).
CONSUMER_DEFAULTS: Final[Mapping[str, ConfigValue]] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
}


def _log_error(err: object) -> None:
    # librdkafka reports transient client errors (broker down, reconnects) here; it retries itself.
    _log.warning("kafka client error: %s", err)


def build_config(
    settings: KafkaSettings,
    overrides: Mapping[str, ConfigValue] | None = None,
    *,
    defaults: Mapping[str, ConfigValue] | None = None,
) -> dict[str, ConfigValue]:
    """A fresh librdkafka config dict: ``defaults`` < settings < ``overrides``.

    The caller's mappings are copied, never mutated.

    :param settings: where the broker is (``bootstrap.servers``).
    :param overrides: librdkafka dotted names that win over everything else, default none.
    :param defaults: role defaults (e.g. :data:`PRODUCER_DEFAULTS`), default none.
    """
    config: dict[str, ConfigValue] = {"error_cb": _log_error, "logger": _client_log}
    if defaults:
        config.update(defaults)
    config["bootstrap.servers"] = settings.bootstrap_servers
    config.update(security_config(settings.security))
    if overrides:
        config.update(overrides)
    return config


def security_config(security: KafkaSecurity) -> dict[str, ConfigValue]:
    """The librdkafka ``security.protocol``, ``sasl.*`` and ``ssl.*`` entries for ``security``.

    Contains the clear-text password: hand it to a client constructor, never to a log.
    """
    config: dict[str, ConfigValue] = {"security.protocol": security.security_protocol}
    if security.uses_sasl:
        assert security.sasl_username is not None and security.sasl_password is not None  # noqa: S101 - narrows the Optionals; validated
        config["sasl.mechanism"] = security.sasl_mechanism
        config["sasl.username"] = security.sasl_username
        config["sasl.password"] = security.sasl_password.get_secret_value()
        if security.sasl_mechanism == "PLAIN" and not security.uses_tls:
            _log.warning("kafka.sasl_plain_without_tls: SASL PLAIN over %s sends the password readable on "
                         "the wire; use SASL_SSL or SCRAM-SHA-512", security.security_protocol)
    if security.uses_tls:
        config["ssl.endpoint.identification.algorithm"] = "https" if security.ssl_check_hostname else "none"
        if security.ssl_ca_location:
            config["ssl.ca.location"] = security.ssl_ca_location
        if security.ssl_certificate_location and security.ssl_key_location:
            config["ssl.certificate.location"] = security.ssl_certificate_location
            config["ssl.key.location"] = security.ssl_key_location
        if security.ssl_key_password is not None:
            config["ssl.key.password"] = security.ssl_key_password.get_secret_value()
    return config
