"""Settings of ``agentaudit notify``, read from ``AGENTAUDIT_NOTIFY_*`` environment variables at the entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["NotifySettings"]


class NotifySettings(BaseSettings):
    """How the notifier consumes, delivers and retries.

    :param group: ``AGENTAUDIT_NOTIFY_GROUP``, consumer group id, default ``agentaudit-notify``.
    :param dashboard_url: ``AGENTAUDIT_NOTIFY_DASHBOARD_URL``, base of the deep link every notification carries
        (``<url>/?page=incident&incident=<id>``), default ``http://127.0.0.1:8501``.
    :param state_dir: ``AGENTAUDIT_NOTIFY_STATE_DIR``, where the outbox (SQLite) lives: what was decided and what
        was delivered, so a restart neither loses nor repeats a notification; default ``~/.agentaudit/notify``.
    :param timeout_s: ``AGENTAUDIT_NOTIFY_TIMEOUT_S``, the longest one HTTP request may take, default 5.
    :param max_response_bytes: ``AGENTAUDIT_NOTIFY_MAX_RESPONSE_BYTES``, bytes of a receiver's answer read at most
        (the rest is dropped unread), default 65536.
    :param attempts: ``AGENTAUDIT_NOTIFY_ATTEMPTS``, tries per round before the delivery waits for the next round,
        default 4.
    :param retry_initial_s: ``AGENTAUDIT_NOTIFY_RETRY_INITIAL_S``, first back-off, default 0.2 (doubling, jittered).
    :param retry_max_s: ``AGENTAUDIT_NOTIFY_RETRY_MAX_S``, back-off cap, also between rounds, default 30.
    :param batch_size: ``AGENTAUDIT_NOTIFY_BATCH_SIZE``, messages per batch, default 500.
    :param batch_timeout_ms: ``AGENTAUDIT_NOTIFY_BATCH_TIMEOUT_MS``, the longest a batch waits to fill, default 200.
    :param consumer_config: extra librdkafka consumer settings (dotted names), merged last.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_NOTIFY_", frozen=True, extra="ignore")

    group: str = "agentaudit-notify"
    dashboard_url: str = "http://127.0.0.1:8501"
    state_dir: Path = Path("~/.agentaudit/notify")
    timeout_s: float = Field(default=5.0, gt=0)
    max_response_bytes: int = Field(default=65_536, ge=0)
    attempts: int = Field(default=4, ge=1, le=20)
    retry_initial_s: float = Field(default=0.2, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=500, gt=0)
    batch_timeout_ms: int = Field(default=200, gt=0)
    consumer_config: dict[str, Any] = Field(default_factory=dict)
