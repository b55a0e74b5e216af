"""Settings of the rules worker (``agentaudit rules run``), read from ``AGENTAUDIT_RULES_*`` at the entry point."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_IDLE_TIMEOUT_MS", "RulesSettings"]

DEFAULT_IDLE_TIMEOUT_MS = 5_000


class RulesSettings(BaseSettings):
    """How the rules worker treats quiet source partitions.

    :param idle_timeout_ms: ``AGENTAUDIT_RULES_IDLE_TIMEOUT_MS``, processing time after which an
        actions partition that delivers nothing, and has been read to its end, stops holding the
        watermark back until it delivers again; default 5000; 0 never marks a partition idle.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_RULES_", frozen=True, extra="ignore")

    idle_timeout_ms: int = Field(default=DEFAULT_IDLE_TIMEOUT_MS, ge=0)
