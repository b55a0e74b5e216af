"""Running the gateway: the client speaks stdio to the proxy, or streamable HTTP to its address."""

from __future__ import annotations

import anyio
import uvicorn
from mcp.server.stdio import stdio_server
from starlette.applications import Starlette

from agentaudit.producers.mcp_proxy.gateway import McpGateway

__all__ = ["run_http", "run_stdio"]


async def serve_stdio(gateway: McpGateway) -> None:
    """Serve one client on this process's stdin/stdout until it closes them."""
    server = gateway.server()
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def run_stdio(gateway: McpGateway) -> None:
    """Blocking :func:`serve_stdio`."""
    anyio.run(serve_stdio, gateway)


def http_app(gateway: McpGateway, host: str = "127.0.0.1") -> Starlette:
    """The Starlette app serving MCP streamable HTTP on ``/mcp`` (DNS-rebinding protection on loopback)."""
    return gateway.server().streamable_http_app(host=host)


def run_http(gateway: McpGateway, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve streamable HTTP on ``http://host:port/mcp`` until interrupted."""
    # log_config=None: uvicorn's lines go through the root logger, so AGENTAUDIT_LOG_FORMAT=json renders them
    uvicorn.run(http_app(gateway, host), host=host, port=port, log_level="warning", lifespan="on", log_config=None)
