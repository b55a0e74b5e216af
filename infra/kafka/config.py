"""librdkafka configuration: our defaults, the settings, then the caller's overrides.

Dotted librdkafka names pass through unchanged, so anything librdkafka documents can be set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from agentaudit.infra.kafka._types import ConfigValue
from agentaudit.settings import KafkaSettings

__all__ = ["CONSUMER_DEFAULTS", "PRODUCER_DEFAULTS", "build_config"]

_log = logging.getLogger("agentaudit.infra.kafka")
# librdkafka's own log lines go through Python logging instead of straight to stderr.
_client_log = logging.getLogger("agentaudit.infra.kafka.librdkafka")

#: Throughput-friendly producer defaults. No idempotence: tansu does not support producer ids,
#: and the event stream carries its own sequence numbers and hash chain to catch duplicates.
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
    if overrides:
        config.update(overrides)
    return config
