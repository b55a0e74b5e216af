"""Who may use the store and where it keeps its data: the settings ``agentaudit store`` reads from the environment."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_DATA_DIR", "StoreServerSettings"]

DEFAULT_DATA_DIR = "./.agentaudit/store"


class StoreServerSettings(BaseSettings):
    """``agentaudit store`` (env prefix ``AGENTAUDIT_STORE_``); a command-line option wins over its variable.

    :param dir: chDB data directory (``AGENTAUDIT_STORE_DIR``); one process owns it.
    :param password: password of user ``default``, any SQL (``AGENTAUDIT_STORE_PASSWORD``).
    :param reader_password: password of user ``reader``, read-only (``AGENTAUDIT_STORE_READER_PASSWORD``).

    >>> StoreServerSettings(dir="/tmp/s").dir
    '/tmp/s'
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_STORE_", extra="ignore")

    dir: str = DEFAULT_DATA_DIR
    password: SecretStr | None = None
    reader_password: SecretStr | None = None

    def secret(self, name: str) -> str | None:
        """A password as text for the server, or None when unset."""
        value: SecretStr | None = getattr(self, name)
        return value.get_secret_value() if value is not None else None
