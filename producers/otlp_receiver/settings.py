"""Settings of ``agentaudit otlp``, read from ``AGENTAUDIT_OTLP_*`` variables when not passed."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["OtlpSettings"]


class OtlpSettings(BaseSettings):
    """How the OTLP/HTTP receiver listens, whom it lets in and how much it takes.

    :param host: ``AGENTAUDIT_OTLP_HOST``, default ``127.0.0.1``.
    :param port: ``AGENTAUDIT_OTLP_PORT``, default 4318 (the OTLP/HTTP port).
    :param tokens_file: ``AGENTAUDIT_OTLP_TOKENS_FILE``: YAML mapping each tenant to its bearer tokens
        (``acme: [token, "sha256:<hex>"]``; mode 0600); default none.
    :param tokens: ``AGENTAUDIT_OTLP_TOKENS``: ``token=tenant`` pairs, comma-separated, added to the file's.
        With no token at all the receiver runs in dev mode: loopback only, every sender is ``tenant``.
    :param tenant: ``AGENTAUDIT_OTLP_TENANT``, the tenant of dev mode, default ``default``.
    :param agent: ``AGENTAUDIT_OTLP_AGENT``: agent of spans that name none and whose resource has no
        ``service.name``, default ``otlp``.
    :param max_body_bytes: ``AGENTAUDIT_OTLP_MAX_BODY_BYTES``: largest body, before and after gzip, default 8 MiB
        (answered 413 above).
    :param include_all: ``AGENTAUDIT_OTLP_INCLUDE_ALL``: also record spans without ``gen_ai.operation.name``
        (kind ``other``); default false: they are counted as rejected in ``partial_success``.
    :param retry_after_s: ``AGENTAUDIT_OTLP_RETRY_AFTER_S``: the ``Retry-After`` of a 503, default 2.
    :param spool_dir: ``AGENTAUDIT_OTLP_SPOOL_DIR``: the SDK spool root (one directory per tenant below it),
        default the SDK's (``AGENTAUDIT_SPOOL_DIR``).
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_OTLP_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=4318, ge=0, le=65535)
    tokens_file: Path | None = None
    tokens: SecretStr | None = None
    tenant: str = Field(default="default", min_length=1, max_length=256)
    agent: str = Field(default="otlp", min_length=1, max_length=200)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    include_all: bool = False
    retry_after_s: int = Field(default=2, ge=1)
    spool_dir: Path | None = None
