"""`agentaudit mcp-proxy`: the MCP gateway, over stdio or streamable HTTP."""

from __future__ import annotations

import typer

from agentaudit.cli._app import app


@app.command("mcp-proxy", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def mcp_proxy(
    ctx: typer.Context,
    stdio: bool = typer.Option(False, "--stdio", help="The client speaks MCP to this process's stdin/stdout."),
    listen: str = typer.Option(None, "--listen", help="HOST:PORT to serve streamable HTTP on (path /mcp)."),
    upstream: str = typer.Option(None, "--upstream", help="URL of an upstream streamable HTTP server; without "
                                 "it the server command after `--` is spawned over stdio."),
    hide_blocked: bool = typer.Option(None, "--hide-blocked/--show-blocked", help="tools/list leaves out tools "
                                      "blocked by name (AGENTAUDIT_MCP_HIDE_BLOCKED, default show)."),
    approval_timeout: float = typer.Option(None, "--approval-timeout", help="Seconds a call needing approval "
                                           "waits for one (AGENTAUDIT_MCP_APPROVAL_TIMEOUT_S, default 300)."),
    guard_rules: str = typer.Option(None, "--guard-rules", help="Rule files/directories for the inline guard, "
                                    "comma-separated (AGENTAUDIT_MCP_GUARD_RULES, else AGENTAUDIT_GUARD_RULES)."),
    control: bool = typer.Option(True, "--control/--no-control", help="Obey the control topic (kill, pause, "
                                 "tool blocks, approval requirements); default on."),
) -> None:
    """Put agentaudit in front of any MCP server: every tools/call is judged (control plane, inline guard,
    approvals) before it is forwarded, refused calls get an MCP error and never reach the server, and each
    call is recorded as an execute_tool action in the client session's trace.

    The agent and tenant are AGENTAUDIT_AGENT_ID and AGENTAUDIT_TENANT; the broker is AGENTAUDIT_BOOTSTRAP_SERVERS.

    Examples: `agentaudit mcp-proxy --stdio -- python server.py`;
    `agentaudit mcp-proxy --listen 127.0.0.1:8765 --upstream http://127.0.0.1:8000/mcp`;
    `agentaudit mcp-proxy --listen 127.0.0.1:8765 -- npx some-mcp-server`.
    """
    import logging
    import sys

    from agentaudit.exceptions import AgentAuditError
    from agentaudit.logs import configure_logging
    from agentaudit.producers import AuditClient
    from agentaudit.producers.mcp_proxy import (
        McpGateway,
        McpProxySettings,
        Upstream,
        run_http,
        run_stdio,
    )
    from agentaudit.producers.settings import SdkSettings

    configure_logging(logging.WARNING, stream=sys.stderr)  # AGENTAUDIT_LOG_FORMAT; stdout is the MCP channel (--stdio)
    command = [a for a in ctx.args if a != "--"]
    if stdio == bool(listen):
        typer.echo("error: give exactly one of --stdio or --listen HOST:PORT", err=True)
        raise typer.Exit(2)
    if bool(upstream) == bool(command):
        typer.echo("error: give the upstream server as --upstream URL or as a command after `--`, not both",
                   err=True)
        raise typer.Exit(2)
    given = {"hide_blocked": hide_blocked, "approval_timeout_s": approval_timeout, "guard_rules": guard_rules}
    try:
        settings = McpProxySettings(**{k: v for k, v in given.items() if v is not None})
        target = Upstream.http(upstream) if upstream else Upstream.stdio(command)
        host, port = "127.0.0.1", 0
        if listen:
            host, _, port_text = listen.rpartition(":")
            if not host or not port_text.isdigit():
                typer.echo(f"error: --listen {listen!r} must be HOST:PORT, e.g. 127.0.0.1:8765", err=True)
                raise typer.Exit(2)
            port = int(port_text)
        rules = settings.guard_rule_paths() or SdkSettings().guard_rule_paths()
        audit = AuditClient(control=control, guard_rules=rules)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    gateway = McpGateway(target, audit, settings, transport="http" if listen else "stdio")
    try:
        if stdio:
            run_stdio(gateway)
        else:
            typer.echo(f"MCP proxy on http://{host}:{port}/mcp -> {target}", err=True)
            run_http(gateway, host, port)
    finally:
        audit.close()
