"""Settings of the sink, read from ``AGENTAUDIT_SINK_*`` environment variables at the entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agentaudit.schemas.signing import KeyRing

__all__ = ["SinkSettings", "StreamKeysSettings"]


class SinkSettings(BaseSettings):
    """How the sink consumes, batches, retries and judges.

    :param group: ``AGENTAUDIT_SINK_GROUP``, consumer group id, default ``agentaudit-sink``.
    :param batch_size: ``AGENTAUDIT_SINK_BATCH_SIZE``, messages per batch, default 10000.
    :param batch_timeout_ms: ``AGENTAUDIT_SINK_BATCH_TIMEOUT_MS``, the longest a batch waits to fill, default 500.
    :param session_timeout_ms: ``AGENTAUDIT_SINK_SESSION_TIMEOUT_MS``, librdkafka ``session.timeout.ms``, default 10000.
    :param heartbeat_interval_ms: ``AGENTAUDIT_SINK_HEARTBEAT_INTERVAL_MS``, default 2000.
    :param auto_offset_reset: ``AGENTAUDIT_SINK_AUTO_OFFSET_RESET``, where a new group starts, default ``earliest``.
    :param retry_initial_s: ``AGENTAUDIT_SINK_RETRY_INITIAL_S``, first back-off after a store failure, default 0.5.
    :param retry_max_s: ``AGENTAUDIT_SINK_RETRY_MAX_S``, back-off cap, default 30.
    :param forbidden_tools: ``AGENTAUDIT_SINK_FORBIDDEN_TOOLS``, comma-separated tool names the built-in rules flag.
    :param cost_threshold_usd: ``AGENTAUDIT_SINK_COST_THRESHOLD_USD``, per-event cost the built-in rules flag, default 1.0.
    :param consume_lifecycle: ``AGENTAUDIT_SINK_CONSUME_LIFECYCLE``, also store incident lifecycle events, default true.
    :param inline_rules: ``AGENTAUDIT_SINK_INLINE_RULES``, judge the actions in the sink, default true (one process,
        as ``agentaudit up`` runs it). False (``consume --no-rules``): store only, and store the incidents that
        ``agentaudit rules run`` publishes on the incidents topic; the scale-out shape, whose incidents do not
        depend on how many sinks share the group.
    :param idle_timeout_ms: ``AGENTAUDIT_SINK_IDLE_TIMEOUT_MS``, inline rules: a tenant that delivers nothing for
        this long (processing time) while every actions partition is read to its end is quiet, and its watermark
        advances with processing time, so its pending decisions close within lateness + this (see
        :mod:`agentaudit.rules.event_time`); default 5000; 0: never (a quiet tenant's windows wait for its next event).
    :param metrics_port: ``AGENTAUDIT_SINK_METRICS_PORT``, Prometheus HTTP port; unset = no server.
    :param dlq_max_bytes: ``AGENTAUDIT_SINK_DLQ_MAX_BYTES``, the largest dead letter the broker accepts, default
        1000000 (librdkafka's producer limit, under Apache Kafka's default 1048588); a larger key or value is cut,
        its original size and SHA-256 in headers.
    :param dlq_max_attempts: ``AGENTAUDIT_SINK_DLQ_MAX_ATTEMPTS``, tries of a refused dead letter before it goes
        to the quarantine file, default 3 (each after a size refusal a quarter as large).
    :param quarantine_path: ``AGENTAUDIT_SINK_QUARANTINE_PATH``, JSON-lines file of dead letters the broker
        refused, default ``quarantine.jsonl`` in the working directory (``agentaudit up``: its home).
    :param quarantine_max_bytes: ``AGENTAUDIT_SINK_QUARANTINE_MAX_BYTES``, bound of that file and its one
        rotation (``.1``), default 268435456 (256 MiB).
    :param digests: ``AGENTAUDIT_SINK_DIGESTS``, write a signed digest of what each batch stored per partition
        range to ``action_digests`` and the digest topic (checked by ``agentaudit verify --store``), default true.
    :param digest_key: ``AGENTAUDIT_SINK_DIGEST_KEY``, the Ed25519 key that signs them (PEM), created mode 0600
        with ``<path>.pub`` beside it when absent; default ``~/.agentaudit/keys/sink-digest.key``
        (``agentaudit up``: ``<home>/keys/sink-digest.key``).
    :param digest_topic: ``AGENTAUDIT_SINK_DIGEST_TOPIC``, where digests are published too, default
        ``agentaudit.digests`` (created when missing).
    :param consumer_config: extra librdkafka consumer settings (dotted names), merged last.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_SINK_", frozen=True, extra="ignore")

    group: str = "agentaudit-sink"
    batch_size: int = Field(default=10_000, gt=0)
    batch_timeout_ms: int = Field(default=500, gt=0)
    session_timeout_ms: int = Field(default=10_000, gt=0)
    heartbeat_interval_ms: int = Field(default=2_000, gt=0)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    forbidden_tools: Annotated[tuple[str, ...], NoDecode] = ()
    cost_threshold_usd: float = Field(default=1.0, ge=0)
    consume_lifecycle: bool = True
    inline_rules: bool = True
    idle_timeout_ms: int = Field(default=5_000, ge=0)
    metrics_port: int | None = None
    dlq_max_bytes: int = Field(default=1_000_000, ge=16_384)
    dlq_max_attempts: int = Field(default=3, ge=1, le=10)
    quarantine_path: str = "quarantine.jsonl"
    quarantine_max_bytes: int = Field(default=256 * 1024 * 1024, ge=4 * 1024 * 1024)
    digests: bool = True
    digest_key: Path = Path("~/.agentaudit/keys/sink-digest.key")
    digest_topic: str = "agentaudit.digests"
    consumer_config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("forbidden_tools", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


class StreamKeysSettings(BaseSettings):
    """Where the producer keys are that signed streams are verified with (read at the entry point).

    :param keys_file: ``AGENTAUDIT_KEYS_FILE``: the keys file (:class:`~agentaudit.schemas.KeyRing`) that registers
        each producer's public key for its tenant and agents (``agentaudit keys ...`` writes it). Given, the sink
        stores each checkpoint's verdict and the integrity rules require every stream to be signed
        (``integrity.bad-signature``, ``integrity.unauthorized-key``, ``integrity.unsigned-stream``). Default none:
        signatures are neither required nor checked.

    Example::

        keyring = StreamKeysSettings().load_keyring()   # None when not configured
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_", frozen=True, extra="ignore")

    keys_file: Path | None = None

    def load_keyring(self) -> KeyRing | None:
        """The keys file's keys, or None when none is configured. :raises KeysFileError: naming the file."""
        return None if self.keys_file is None else KeyRing.load(self.keys_file.expanduser())
