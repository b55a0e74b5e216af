"""The root of every error agentaudit raises.

Each package keeps its own ``exceptions.py`` with its part of the tree::

    AgentAuditError
    ├── ConfigError                      bad settings, found at startup
    ├── agentaudit.schemas.SchemaError
    │   ├── EncodeError
    │   └── DecodeError                  (UnknownFingerprintError, MessageTooLargeError, ...)
    ├── agentaudit.infra.InfraError
    │   ├── KafkaError                   keeps the librdkafka error code
    │   ├── StoreError                   keeps the ClickHouse exception code
    │   └── ProcessStartError            an embedded component did not come up
    ├── agentaudit.producers.ProducerError
    ├── agentaudit.consumers.ConsumerError
    │   └── RuleError                    names file, line and rule
    └── agentaudit.dashboard.DashboardError
"""

from __future__ import annotations

__all__ = ["AgentAuditError", "ConfigError"]


class AgentAuditError(Exception):
    """Base class of every agentaudit error."""


class ConfigError(AgentAuditError):
    """A setting is missing, malformed or points at nothing; raised at startup, never mid-stream."""
