"""``agentaudit mcp-proxy``: a gateway in front of any MCP server, over stdio or streamable HTTP.

Each ``tools/call`` is judged by the control plane and the inline guard before it is forwarded, and
recorded as an ``execute_tool`` action in the client session's trace.
"""

from agentaudit.producers.mcp_proxy.exceptions import (
    McpProxyConfigError,
    McpUpstreamError,
)
from agentaudit.producers.mcp_proxy.gateway import McpGateway
from agentaudit.producers.mcp_proxy.serve import (
    http_app,
    run_http,
    run_stdio,
    serve_stdio,
)
from agentaudit.producers.mcp_proxy.settings import McpProxySettings
from agentaudit.producers.mcp_proxy.upstream import Upstream

__all__ = [
    "McpGateway",
    "McpProxyConfigError",
    "McpProxySettings",
    "McpUpstreamError",
    "Upstream",
    "http_app",
    "run_http",
    "run_stdio",
    "serve_stdio",
]
