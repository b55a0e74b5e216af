"""`agentaudit otlp`: the OTLP/HTTP receiver."""

from __future__ import annotations

import typer

from agentaudit.cli._app import app


@app.command()
def otlp(
    host: str = typer.Option(None, help="Address to listen on (AGENTAUDIT_OTLP_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (AGENTAUDIT_OTLP_PORT, default 4318)."),
    tokens_file: str = typer.Option(None, "--tokens-file", help="YAML: tenant -> list of bearer tokens "
                                    "(AGENTAUDIT_OTLP_TOKENS_FILE); none: loopback-only dev mode."),
    include_all: bool = typer.Option(None, "--include-all/--genai-only", help="Also record spans without "
                                     "gen_ai.operation.name (AGENTAUDIT_OTLP_INCLUDE_ALL, default GenAI only)."),
) -> None:
    """Receive OTLP/HTTP traces (POST /v1/traces, protobuf or JSON, gzip) from any language's OpenTelemetry SDK;
    GenAI spans become action events through the SDK, in the tenant of the sender's bearer token."""
    import logging

    from agentaudit.exceptions import AgentAuditError
    from agentaudit.logs import configure_logging
    from agentaudit.producers.otlp_receiver import OtlpReceiver, OtlpSettings

    configure_logging(logging.INFO)  # AGENTAUDIT_LOG_FORMAT=json: one JSON object per line

    given = {"host": host, "port": port, "tokens_file": tokens_file, "include_all": include_all}
    try:
        receiver = OtlpReceiver(OtlpSettings(**{k: v for k, v in given.items() if v is not None}))
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"OTLP receiver on {receiver.url}" + (" (dev mode: no tokens, loopback only)"
                                                     if receiver.tokens.dev_mode else ""))
    try:
        receiver.serve_forever()
    except AgentAuditError as exc:  # e.g. the port is taken: one line naming it, not a traceback
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
