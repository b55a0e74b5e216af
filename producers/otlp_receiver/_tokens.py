"""Bearer tokens to tenants: the sender's tenant is the one its token names, never one it claims."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from agentaudit.logs import get_logger
from agentaudit.producers.otlp_receiver.exceptions import OtlpConfigError
from agentaudit.producers.otlp_receiver.settings import OtlpSettings

__all__ = ["TenantTokens"]

_log = get_logger("agentaudit.otlp")
_SHA = re.compile(r"^sha256:([0-9a-f]{64})$")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TenantTokens:
    """Looks up the tenant of a bearer token by the token's SHA-256 (tokens are never kept in clear).

    An empty table is dev mode: every request is ``dev_tenant``'s, and only loopback may send.
    """

    def __init__(self, tenants: Mapping[bytes, str], dev_tenant: str) -> None:
        self._tenants = dict(tenants)
        self.dev_tenant = dev_tenant

    @property
    def dev_mode(self) -> bool:
        return not self._tenants

    def tenant_of(self, authorization: str | None) -> str | None:
        """The tenant of an ``Authorization: Bearer <token>`` header; None for a missing or wrong one."""
        if self.dev_mode:
            return self.dev_tenant
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self._tenants.get(_digest(token.strip()))

    @classmethod
    def load(cls, settings: OtlpSettings) -> TenantTokens:
        """The tokens of ``settings.tokens_file`` and ``settings.tokens``; raises :class:`OtlpConfigError`."""
        table: dict[bytes, str] = {}

        def add(token: str, tenant: str, where: str) -> None:
            token, tenant = token.strip(), tenant.strip()
            if not token or not tenant:
                raise OtlpConfigError(f"{where}: an empty token or tenant; write tenant: [token, ...]")
            found = _SHA.match(token)
            key = bytes.fromhex(found.group(1)) if found else _digest(token)
            if table.get(key, tenant) != tenant:
                raise OtlpConfigError(f"{where}: one token names two tenants ({table[key]!r} and {tenant!r})")
            table[key] = tenant

        path = settings.tokens_file
        if path is not None:
            try:
                data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise OtlpConfigError(f"tokens file {path}: cannot read it ({exc}); set AGENTAUDIT_OTLP_TOKENS_FILE "
                                      "to a YAML mapping of tenant to tokens") from exc
            if not isinstance(data, dict):
                raise OtlpConfigError(f"tokens file {path}: expected a mapping of tenant to a list of tokens")
            for tenant, tokens in data.items():
                tokens = [tokens] if isinstance(tokens, str) else tokens
                if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                    raise OtlpConfigError(f"tokens file {path}: tenant {tenant!r}: expected a list of token strings")
                for token in tokens:
                    add(token, str(tenant), f"tokens file {path}, tenant {tenant!r}")
            if Path(path).stat().st_mode & 0o077:
                _log.warning("otlp.tokens_file_readable", path=path, hint="other users can read it; chmod 600")
        if settings.tokens is not None:
            for pair in settings.tokens.get_secret_value().split(","):
                if pair.strip():
                    token, sep, tenant = pair.rpartition("=")
                    if not sep:
                        raise OtlpConfigError("AGENTAUDIT_OTLP_TOKENS: expected token=tenant pairs, comma-separated")
                    add(token, tenant, "AGENTAUDIT_OTLP_TOKENS")
        return cls(table, settings.tenant)
