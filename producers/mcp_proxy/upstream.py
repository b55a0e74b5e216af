"""Where the real MCP server is: a command the proxy spawns over stdio, or a streamable HTTP URL."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from agentaudit.producers.mcp_proxy.exceptions import McpProxyConfigError

__all__ = ["Upstream"]


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream MCP server. Build with :meth:`stdio` or :meth:`http`, open with :meth:`client`."""

    command: tuple[str, ...] = ()
    url: str = ""
    env: Mapping[str, str] | None = None

    @classmethod
    def stdio(cls, command: Sequence[str], env: Mapping[str, str] | None = None) -> Upstream:
        """Spawn ``command`` (argv) and speak MCP over its stdin/stdout.

        :param env: the server's environment, default the proxy's own.
        """
        if not command:
            raise McpProxyConfigError("no upstream server command; give it after `--`, e.g. "
                                      "`agentaudit mcp-proxy --stdio -- python server.py`")
        if shutil.which(command[0]) is None:
            raise McpProxyConfigError(f"upstream command {command[0]!r} is not found or not executable; "
                                      "give its path")
        return cls(command=tuple(command), env=env)

    @classmethod
    def http(cls, url: str) -> Upstream:
        """Speak MCP over streamable HTTP to ``url`` (e.g. ``http://127.0.0.1:8000/mcp``)."""
        if not url.startswith(("http://", "https://")):
            raise McpProxyConfigError(f"upstream URL {url!r} must start with http:// or https://")
        return cls(url=url)

    def client(self) -> Client:
        """An unopened mcp :class:`~mcp.Client` (``async with`` it)."""
        if self.url:
            return Client(self.url)
        env = dict(os.environ if self.env is None else self.env)
        return Client(StdioServerParameters(command=self.command[0], args=list(self.command[1:]), env=env))

    def __str__(self) -> str:
        return self.url or " ".join(self.command)
