"""Settings of the rules worker (``agentaudit rules run``), read from ``AGENTAUDIT_RULES_*`` at the entry point."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_IDLE_TIMEOUT_MS", "DEFAULT_LATENESS_MS", "RulesSettings"]

DEFAULT_IDLE_TIMEOUT_MS = 5_000
DEFAULT_LATENESS_MS = 30_000


class RulesSettings(BaseSettings):
    """Event time of the rule engine (see :mod:`agentaudit.rules.event_time`).

    :param idle_timeout_ms: ``AGENTAUDIT_RULES_IDLE_TIMEOUT_MS``, ``rules run``: processing time after which an
        actions partition that delivers nothing, and has been read to its end, stops holding the
        watermark back until it delivers again, and, once all are idle, event time moves on with
        processing time; default 5000; 0 never marks a partition idle.
        (Inline ``consume``: ``AGENTAUDIT_SINK_IDLE_TIMEOUT_MS``, the same per tenant.)
    :param lateness_ms: ``AGENTAUDIT_RULES_LATENESS_MS``, allowed lateness of both ``consume`` (inline rules)
        and ``rules run``: the watermark trails the largest event time by this much; default 30000.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_RULES_", frozen=True, extra="ignore")

    idle_timeout_ms: int = Field(default=DEFAULT_IDLE_TIMEOUT_MS, ge=0)
    lateness_ms: int = Field(default=DEFAULT_LATENESS_MS, ge=0)
