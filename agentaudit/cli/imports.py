"""`agentaudit import ...`: backfill of recorded runs with their real times."""

from __future__ import annotations

import typer

from agentaudit.cli._app import app

import_app = typer.Typer(help="Backfill recorded runs as action events with their real times (through the SDK: "
                         "sealed, chained, judged, replayed and diffed like live events).", no_args_is_help=True)
app.add_typer(import_app, name="import")
_IMPORT_FILES = typer.Argument(..., help="Files to import.", exists=True, dir_okay=False)
_DEAD_LETTER = typer.Option(None, "--dead-letter", help="Write each rejected line here (JSON lines: file, line, "
                            "field, reason, record); the import then exits 0 when only lines were rejected.")


def _import(run, files: list[str], *, tenant: str | None, agent: str | None, bootstrap: str | None,
            topic: str | None, dead_letter: str | None) -> None:
    """Build one SDK client per tenant, run ``run(paths, clients, report)``, flush, print what happened."""
    from contextlib import nullcontext
    from pathlib import Path

    from agentaudit.exceptions import AgentAuditError
    from agentaudit.producers import AuditClient
    from agentaudit.producers.importers import ImportReport
    from agentaudit.settings import KafkaSettings

    kafka = KafkaSettings(**({"bootstrap_servers": bootstrap} if bootstrap else {}))
    clients: dict[str | None, AuditClient] = {}

    def client_for(name: str | None) -> AuditClient:
        key = name or tenant
        if key not in clients:
            clients[key] = AuditClient(kafka=kafka, tenant=key, agent=agent, topic=topic)
        return clients[key]

    report = ImportReport()
    try:
        with open(dead_letter, "w", encoding="utf-8") if dead_letter else nullcontext() as sink:
            report.dead_letter = sink
            run([Path(f) for f in files], client_for, report)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        delivered = all(c.flush(60.0) for c in clients.values())
        for c in clients.values():
            c.close()
    typer.echo(report.summary())
    for reason, count in sorted(report.reasons().items()):
        typer.echo(f"  {count} x {reason}")
    for error in report.rejected[:20]:
        typer.echo(f"  rejected {error}", err=True)
    if not delivered:
        typer.echo("warning: some events are not yet confirmed by the broker; they wait in the SDK's spool "
                   "and are sent by the next process", err=True)
    if not delivered or (report.rejected and not dead_letter):
        raise typer.Exit(1)


@import_app.command("transcripts")
def import_transcripts_command(
    files: list[str] = _IMPORT_FILES,
    start: str = typer.Option(None, help="Start of the deterministic clock for runs without times, ISO 8601 "
                              "(e.g. 2026-03-01T09:00:00Z); runs without times are rejected without it."),
    step: float = typer.Option(1.0, help="Seconds between two messages without times."),
    tenant: str = typer.Option(None, help="Tenant of lines that name none (AGENTAUDIT_TENANT)."),
    agent: str = typer.Option(None, help="Agent of lines without agent_id (AGENTAUDIT_AGENT_ID)."),
    bootstrap: str = typer.Option(None, help="Kafka bootstrap servers (AGENTAUDIT_BOOTSTRAP_SERVERS)."),
    topic: str = typer.Option(None, help="Topic (default the actions topic, AGENTAUDIT_TOPIC_ACTIONS)."),
    dead_letter: str = _DEAD_LETTER,
) -> None:
    """OpenAI-style chat transcripts, JSON lines, one run per line ({"messages": [...], "run_id", "agent_id",
    "tenant", "started_at"}; message "timestamp": ISO 8601 or epoch seconds)."""
    from functools import partial

    from agentaudit.producers.importers import ImportInputError, import_transcripts, parse_time_us

    try:
        start_us = parse_time_us(start, "--start", path="(option)", line=0) if start else None
    except ImportInputError as exc:
        typer.echo(f"error: --start: {exc.reason}", err=True)
        raise typer.Exit(2) from exc
    _import(partial(import_transcripts, start_us=start_us, step_us=round(step * 1_000_000)), files, tenant=tenant,
            agent=agent, bootstrap=bootstrap, topic=topic, dead_letter=dead_letter)


@import_app.command("otlp")
def import_otlp_command(
    files: list[str] = _IMPORT_FILES,
    include_all: bool = typer.Option(False, "--include-all", help="Also spans without gen_ai.operation.name."),
    tenant: str = typer.Option(None, help="Tenant (AGENTAUDIT_TENANT)."),
    agent: str = typer.Option(None, help="Agent of spans that name none (AGENTAUDIT_AGENT_ID)."),
    bootstrap: str = typer.Option(None, help="Kafka bootstrap servers (AGENTAUDIT_BOOTSTRAP_SERVERS)."),
    topic: str = typer.Option(None, help="Topic (default the actions topic, AGENTAUDIT_TOPIC_ACTIONS)."),
    dead_letter: str = _DEAD_LETTER,
) -> None:
    """OpenTelemetry trace files in OTLP JSON (an ExportTraceServiceRequest, or one per line as the Collector's
    file exporter writes); GenAI spans become actions as with the live AuditSpanProcessor."""
    from functools import partial

    from agentaudit.producers.importers import import_otlp_json

    _import(partial(import_otlp_json, include_all=include_all), files, tenant=tenant, agent=agent,
            bootstrap=bootstrap, topic=topic, dead_letter=dead_letter)
