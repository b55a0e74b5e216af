"""Settings shared by every component, read from ``AGENTAUDIT_*`` environment variables.

The environment is read at the entry point (the CLI, or a client's constructor when
no settings object is passed), never deep in the code.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KafkaSecurity", "KafkaSettings", "StoreSettings", "TopicNames"]

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


class KafkaSecurity(BaseSettings):
    """How every Kafka client authenticates (SASL) and encrypts (TLS). ``AGENTAUDIT_KAFKA_<NAME>`` sets each.

    The SDK, sink, rules worker, control listener, dashboard and CLI all build their librdkafka
    config from this one object (through :class:`KafkaSettings`), so one set of variables
    configures them all. Passwords are ``SecretStr``: repr, str, ``model_dump`` and validation
    errors show ``**********``.

    :param security_protocol: ``AGENTAUDIT_KAFKA_SECURITY_PROTOCOL``, default ``PLAINTEXT``
        (no authentication; the embedded tansu broker only speaks this). ``SASL_SSL`` in production.
    :param sasl_mechanism: ``AGENTAUDIT_KAFKA_SASL_MECHANISM``, default ``SCRAM-SHA-512``; ``PLAIN``
        sends the password itself, so use it only under TLS.
    :param sasl_username: ``AGENTAUDIT_KAFKA_SASL_USERNAME``, the principal (``User:<name>`` in ACLs).
    :param sasl_password: ``AGENTAUDIT_KAFKA_SASL_PASSWORD``, masked when printed.
    :param ssl_ca_location: ``AGENTAUDIT_KAFKA_SSL_CA_LOCATION``, PEM file of the CA that signed the
        broker's certificate; default the system trust store.
    :param ssl_certificate_location: ``AGENTAUDIT_KAFKA_SSL_CERTIFICATE_LOCATION``, client certificate (mTLS).
    :param ssl_key_location: ``AGENTAUDIT_KAFKA_SSL_KEY_LOCATION``, client private key (mTLS).
    :param ssl_key_password: ``AGENTAUDIT_KAFKA_SSL_KEY_PASSWORD``, masked when printed.
    :param ssl_check_hostname: ``AGENTAUDIT_KAFKA_SSL_CHECK_HOSTNAME``, default true: the broker's
        certificate must name the host dialled.

    Example::

        KafkaSettings(bootstrap_servers="kafka:9094", security=KafkaSecurity(
            security_protocol="SASL_SSL", sasl_username="agent", sasl_password="...",
            ssl_ca_location="/etc/agentaudit/kafka-ca.pem"))
    """

    # hide_input_in_errors: a ValidationError would otherwise quote the raw password it was given.
    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_KAFKA_", frozen=True, extra="ignore",
                                      hide_input_in_errors=True)

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol.endswith("SSL")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        # A half-configured client would silently connect without the protection asked for.
        if self.uses_sasl and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(f"security_protocol {self.security_protocol} needs AGENTAUDIT_KAFKA_SASL_USERNAME "
                             "and AGENTAUDIT_KAFKA_SASL_PASSWORD")
        if not self.uses_sasl and (self.sasl_username or self.sasl_password is not None):
            raise ValueError(f"SASL credentials are set but security_protocol is {self.security_protocol}, "
                             "which sends none; set AGENTAUDIT_KAFKA_SECURITY_PROTOCOL=SASL_SSL "
                             "(or SASL_PLAINTEXT on loopback)")
        tls_files = (self.ssl_ca_location, self.ssl_certificate_location, self.ssl_key_location)
        if not self.uses_tls and any(tls_files):
            raise ValueError(f"TLS files are set but security_protocol is {self.security_protocol}, which does "
                             "not use TLS; set AGENTAUDIT_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SSL")
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError("mTLS needs both AGENTAUDIT_KAFKA_SSL_CERTIFICATE_LOCATION and "
                             "AGENTAUDIT_KAFKA_SSL_KEY_LOCATION")
        return self


class KafkaSettings(BaseSettings):
    """Where the broker is, how clients authenticate to it, and how messages are framed.

    :param bootstrap_servers: ``AGENTAUDIT_BOOTSTRAP_SERVERS``, default ``127.0.0.1:9092``.
    :param schema_registry_url: ``AGENTAUDIT_SCHEMA_REGISTRY_URL``; when set, messages use the
        Confluent wire format instead of Avro single-object encoding.
    :param max_message_bytes: ``AGENTAUDIT_MAX_MESSAGE_BYTES``; larger messages go to the DLQ.
    :param partitions: ``AGENTAUDIT_PARTITIONS``, partitions for topics agentaudit creates.
    :param replication_factor: ``AGENTAUDIT_REPLICATION_FACTOR``, replicas of each topic agentaudit creates;
        default ``min(3, brokers in the cluster)`` (3 on a production cluster, 1 on a single broker).
    :param min_insync_replicas: ``AGENTAUDIT_MIN_INSYNC_REPLICAS``, the ``min.insync.replicas`` of those
        topics; default ``min(2, replication_factor - 1)`` (2 with 3 replicas: one broker may die without
        losing an ``acks=all`` write or refusing one), the broker's default with 1 replica.
    :param enable_idempotence: ``AGENTAUDIT_ENABLE_IDEMPOTENCE``, idempotent producers (no duplicate from a
        retried send); default off because the embedded tansu broker has no producer ids. Turn it on with
        Apache Kafka (the CI Kafka tier does).
    :param security: SASL and TLS, from ``AGENTAUDIT_KAFKA_*`` (see :class:`KafkaSecurity`).
    """

    # hide_input_in_errors: a nested ``security`` dict would otherwise be quoted with its password.
    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_", frozen=True, extra="ignore",
                                      hide_input_in_errors=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    schema_registry_url: str | None = None
    max_message_bytes: int = Field(default=1_000_000, gt=0)
    partitions: int = Field(default=3, gt=0)
    replication_factor: int | None = Field(default=None, gt=0)
    min_insync_replicas: int | None = Field(default=None, gt=0)
    enable_idempotence: bool = False
    topics: TopicNames = Field(default_factory=TopicNames)
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)


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
