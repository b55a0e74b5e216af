"""``DashboardSettings``: how the dashboard runs and who may sign in (``AGENTAUDIT_DASHBOARD_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DashboardSettings"]


class DashboardSettings(BaseSettings):
    """Dashboard settings, read from the environment at the entry point (``app.py``, the CLI).

    :param host: ``AGENTAUDIT_DASHBOARD_HOST``, interface Streamlit binds, default ``127.0.0.1``.
    :param port: ``AGENTAUDIT_DASHBOARD_PORT``, default 8501.
    :param auth: ``AGENTAUDIT_DASHBOARD_AUTH``: ``users`` (the configured user list below, for the
        embedded default) or ``oidc`` (Streamlit's ``st.login`` with an OIDC provider configured in
        ``.streamlit/secrets.toml``, for production).
    :param users: ``AGENTAUDIT_DASHBOARD_USERS``, ``name:team`` pairs separated by commas,
        e.g. ``alice:team-payments,bob:team-sre``; default ``oncall:sre``.
    :param password: ``AGENTAUDIT_DASHBOARD_PASSWORD``: when set, signing in as a listed user needs it.
    :param rules: ``AGENTAUDIT_DASHBOARD_RULES`` (else ``AGENTAUDIT_RULES``, the consumer's): rule files
        whose descriptions and revision the pages show; default the shipped pack.
    :param graph_max_nodes: ``AGENTAUDIT_DASHBOARD_GRAPH_MAX_NODES``: traces larger than this are drawn
        collapsed (the highlighted path and its neighbours stay), default 80.
    :param list_limit: ``AGENTAUDIT_DASHBOARD_LIST_LIMIT``, rows of the incidents list, default 500.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_DASHBOARD_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8501, ge=0, le=65535)
    auth: Literal["users", "oidc"] = "users"
    users: str = "oncall:sre"
    password: SecretStr = SecretStr("")
    rules: str | None = Field(default=None, validation_alias=AliasChoices("AGENTAUDIT_DASHBOARD_RULES",
                                                                          "AGENTAUDIT_RULES", "rules"))
    graph_max_nodes: int = Field(default=80, ge=10)
    list_limit: int = Field(default=500, gt=0, le=100_000)
