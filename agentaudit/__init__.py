"""agentaudit: event-sourced observability, audit and control for AI agent systems."""

from agentaudit.exceptions import AgentAuditError, ConfigError

__all__ = ["AgentAuditError", "ConfigError", "__version__"]
__version__ = "0.1.0"
