"""Errors of the MCP gateway::

    AgentAuditError
    ├── ConfigError
    │   └── McpProxyConfigError   bad proxy settings: no upstream, both upstreams, an unusable listen address;
    │                             raised at start, never per call
    └── ProducerError
        └── McpUpstreamError      the upstream MCP server cannot be started or reached

A tool call never raises out of the proxy: a refusal, an oversized call or an upstream failure becomes an
MCP error result (``isError: true``) or a JSON-RPC error the client can read.
"""

from __future__ import annotations

from agentaudit.exceptions import ConfigError
from agentaudit.producers.exceptions import ProducerError

__all__ = ["McpProxyConfigError", "McpUpstreamError"]


class McpProxyConfigError(ProducerError, ConfigError):
    """A proxy setting is invalid (upstream, listen address)."""


class McpUpstreamError(ProducerError):
    """The upstream MCP server cannot be started or reached."""
