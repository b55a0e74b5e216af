"""``DashboardSettings``: how the dashboard runs and who may sign in (``AGENTAUDIT_DASHBOARD_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DashboardSettings"]


class DashboardSettings(BaseSettings):
    """Dashboard settings, read from the environment at the entry point (``app.py``, the CLI).

    :param host: ``AGENTAUDIT_DASHBOARD_HOST``, interface Streamlit binds, default ``127.0.0.1``.
    :param port: ``AGENTAUDIT_DASHBOARD_PORT``, default 8501.
    :param auth: ``AGENTAUDIT_DASHBOARD_AUTH``: ``users`` (name and password checked against the users
        file, the default) or ``oidc`` (Streamlit's ``st.login`` with an OIDC provider configured in
        ``.streamlit/secrets.toml``; the users file lists the identities, by e-mail, that may sign in).
    :param users_file: ``AGENTAUDIT_DASHBOARD_USERS_FILE``, the users file (``name:team:role:hash``, mode 0600),
        default ``.agentaudit/dashboard-users``; ``agentaudit up`` points it at ``<home>/dashboard-users``.
    :param anonymous_view: ``AGENTAUDIT_DASHBOARD_ANONYMOUS_VIEW``: let visitors who did not sign in read the
        pages (never act), default false: nothing is shown before sign-in.
    :param rules: ``AGENTAUDIT_DASHBOARD_RULES`` (else ``AGENTAUDIT_RULES``, the consumer's): rule files
        whose descriptions and revision the pages show; default the shipped pack.
    :param graph_max_nodes: ``AGENTAUDIT_DASHBOARD_GRAPH_MAX_NODES``: traces larger than this are drawn
        collapsed (the highlighted path and its neighbours stay), default 80.
    :param list_limit: ``AGENTAUDIT_DASHBOARD_LIST_LIMIT``, rows of the incidents list, default 500.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_DASHBOARD_", frozen=True, extra="ignore",
                                      hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8501, ge=0, le=65535)
    auth: Literal["users", "oidc"] = "users"
    users_file: Path = Path(".agentaudit") / "dashboard-users"
    anonymous_view: bool = False
    # Retired: a user list without passwords and one password shared by all. Set, they stop the dashboard.
    users: str | None = Field(default=None, repr=False)
    password: SecretStr | None = Field(default=None, repr=False)
    rules: str | None = Field(default=None, validation_alias=AliasChoices("AGENTAUDIT_DASHBOARD_RULES",
                                                                          "AGENTAUDIT_RULES", "rules"))
    graph_max_nodes: int = Field(default=80, ge=10)
    list_limit: int = Field(default=500, gt=0, le=100_000)

    @model_validator(mode="after")
    def _no_shared_password(self) -> DashboardSettings:
        # Silently ignoring them would leave someone believing the dashboard is protected by them.
        if self.users is not None or self.password is not None:
            raise ValueError("AGENTAUDIT_DASHBOARD_USERS and AGENTAUDIT_DASHBOARD_PASSWORD are no longer used: "
                             "each person has their own password in the users file "
                             "(AGENTAUDIT_DASHBOARD_USERS_FILE); add them with "
                             "`agentaudit dashboard-users add NAME --team TEAM` and unset both variables")
        return self
