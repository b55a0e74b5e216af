"""Settings shared by every component, read from ``AGENTAUDIT_*`` environment variables.

The environment is read at the entry point (the CLI, or a client's constructor when
no settings object is passed), never deep in the code.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KafkaSettings", "StoreSettings", "TopicNames"]

_ENV = SettingsConfigDict(env_prefix="AGENTAUDIT_", frozen=True, extra="ignore")


class TopicNames(BaseSettings):
    """Kafka topic names. ``AGENTAUDIT_TOPIC_<NAME>`` overrides each one."""

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_TOPIC_", frozen=True, extra="ignore")

    actions: str = "agentaudit.actions"
    incidents: str = "agentaudit.incidents"
    lifecycle: str = "agentaudit.lifecycle"
    control: str = "agentaudit.control"
    dlq: str = "agentaudit.dlq"
    repartition: str = "agentaudit.actions.by-key"


class KafkaSettings(BaseSettings):
    """Where the broker is and how messages are framed.

    :param bootstrap_servers: ``AGENTAUDIT_BOOTSTRAP_SERVERS``, default ``127.0.0.1:9092``.
    :param schema_registry_url: ``AGENTAUDIT_SCHEMA_REGISTRY_URL``; when set, messages use the
        Confluent wire format instead of Avro single-object encoding.
    :param max_message_bytes: ``AGENTAUDIT_MAX_MESSAGE_BYTES``; larger messages go to the DLQ.
    :param partitions: ``AGENTAUDIT_PARTITIONS``, partitions for topics agentaudit creates.
    """

    model_config = _ENV

    bootstrap_servers: str = "127.0.0.1:9092"
    schema_registry_url: str | None = None
    max_message_bytes: int = Field(default=1_000_000, gt=0)
    partitions: int = Field(default=3, gt=0)
    replication_factor: int = Field(default=1, gt=0)
    topics: TopicNames = Field(default_factory=TopicNames)


class StoreSettings(BaseSettings):
    """Where ClickHouse is.

    :param clickhouse_url: ``AGENTAUDIT_CLICKHOUSE_URL``, default ``http://127.0.0.1:8123``;
        ``chdb:///path`` opens an in-process chDB directory instead.
    :param clickhouse_user: ``AGENTAUDIT_CLICKHOUSE_USER``, default ``default``.
    :param clickhouse_password: ``AGENTAUDIT_CLICKHOUSE_PASSWORD``, masked when printed.
    :param database: ``AGENTAUDIT_DATABASE``, default ``agentaudit``.
    :param retention_days: ``AGENTAUDIT_RETENTION_DAYS``, TTL of action rows, default 90.
    """

    model_config = _ENV

    clickhouse_url: str = "http://127.0.0.1:8123"
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    database: str = Field(default="agentaudit", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    retention_days: int = Field(default=90, gt=0)
    incident_retention_days: int = Field(default=365, gt=0)
    compression: Literal["lz4", "zstd", "gzip", "none"] = "lz4"

    def redacted_url(self) -> str:
        """The URL with any embedded password masked, for logs and ``status``."""
        parts = urlsplit(self.clickhouse_url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.clickhouse_url
