"""Settings of ``agentaudit mcp-proxy``, read from ``AGENTAUDIT_MCP_*`` variables when not passed.

The agent and tenant the calls are recorded for are the SDK's (``AGENTAUDIT_AGENT_ID``, ``AGENTAUDIT_TENANT``).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["McpProxySettings"]


class McpProxySettings(BaseSettings):
    """What the gateway enforces and how long it waits.

    :param hide_blocked: ``AGENTAUDIT_MCP_HIDE_BLOCKED``: ``tools/list`` leaves out tools the control plane
        blocks or an enforce-mode guard rule denies by name, default false (listed, refused when called).
    :param approval_timeout_s: ``AGENTAUDIT_MCP_APPROVAL_TIMEOUT_S``: how long a call that needs an approval
        is held waiting for one bound to its exact arguments, default 300; 0 refuses at once.
    :param max_argument_bytes: ``AGENTAUDIT_MCP_MAX_ARGUMENT_BYTES``: largest arguments (as JSON) a call may
        carry; larger calls are refused before anything is judged or forwarded, default 1 MiB.
    :param guard_rules: ``AGENTAUDIT_MCP_GUARD_RULES``: rule files or directories for the inline guard
        (comma-separated); default the SDK's ``AGENTAUDIT_GUARD_RULES``, else none.
    :param upstream_timeout_s: ``AGENTAUDIT_MCP_UPSTREAM_TIMEOUT_S``: the most one forwarded call may take,
        default 300.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTAUDIT_MCP_", frozen=True, extra="ignore")

    hide_blocked: bool = False
    approval_timeout_s: float = Field(default=300.0, ge=0)
    max_argument_bytes: int = Field(default=1024 * 1024, gt=0)
    guard_rules: str | None = None
    upstream_timeout_s: float = Field(default=300.0, gt=0)

    def guard_rule_paths(self) -> list[str] | None:
        if not self.guard_rules:
            return None
        return [p.strip() for p in self.guard_rules.split(",") if p.strip()]
