"""Where the control plane's authority and signing keys are, read from ``AGENTAUDIT_*`` at the entry point."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from agentaudit.control.authority import Authority
from agentaudit.schemas import SigningKey

__all__ = ["AuthoritySettings"]


class AuthoritySettings(BaseSettings):
    """Files of the control plane's authority. Paths only: keys never sit in the environment.

    :param authority_file: ``AGENTAUDIT_AUTHORITY_FILE``, the operator keys and grants that every reader of
        the control and lifecycle topics checks (:class:`~agentaudit.control.authority.Authority`). Unset:
        records are applied unchecked and a warning says so once (``agentaudit up`` always sets it).
    :param operator_key_file: ``AGENTAUDIT_OPERATOR_KEY_FILE``, the private key (PEM, mode 0600) that
        ``agentaudit control ...`` and ``rules promote`` sign with; its file stem is the key id.
    :param service_key_file: ``AGENTAUDIT_SERVICE_KEY_FILE``, the private key a service (dashboard, consumer,
        escalator) signs with, on behalf of the person or rule it names.

    Example::

        settings = AuthoritySettings()                 # at the entry point
        authority = settings.load_authority()          # None when not configured
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_", frozen=True, extra="ignore")

    authority_file: Path | None = None
    operator_key_file: Path | None = None
    service_key_file: Path | None = None

    def load_authority(self) -> Authority | None:
        """The authority file's contents, or None when none is configured. :raises AuthorityError:"""
        return None if self.authority_file is None else Authority.load(self.authority_file.expanduser())

    def operator_key(self) -> SigningKey | None:
        """The operator's signing key, or None. :raises KeysFileError: unreadable, or readable by others."""
        return None if self.operator_key_file is None else SigningKey.load(self.operator_key_file.expanduser())

    def service_key(self) -> SigningKey | None:
        """The service's signing key, or None. :raises KeysFileError: unreadable, or readable by others."""
        return None if self.service_key_file is None else SigningKey.load(self.service_key_file.expanduser())
