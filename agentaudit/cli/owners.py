"""`agentaudit owners ...`: who owns what, and escalation."""

from __future__ import annotations

import typer

from agentaudit.cli._app import app
from agentaudit.cli._common import service_authority

owners_app = typer.Typer(help="Who owns which agents, tools, tenants and rules.", no_args_is_help=True)
app.add_typer(owners_app, name="owners")


def _load_owners_or_exit(path: str):  # returns an OwnershipMap
    from agentaudit.rules.owners import OwnersError, load_owners

    try:
        return load_owners(path)
    except OwnersError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@owners_app.command("check")
def owners_check(
    owners: str = typer.Option(..., "--owners", help="Owners YAML file."),
    days: int = typer.Option(7, help="Look at agents seen in the last N days."),
    fail: bool = typer.Option(False, "--fail", help="Exit 1 when some agent is unowned (for CI)."),
) -> None:
    """List every agent seen in the actions table in the last N days that no one owns."""
    from agentaudit.consumers.owners import agents_seen
    from agentaudit.infra.clickhouse import connect
    from agentaudit.rules.owners import unowned_agents
    from agentaudit.settings import StoreSettings

    mapping = _load_owners_or_exit(owners)
    with connect(StoreSettings(), readonly=True) as store:
        seen = agents_seen(store, days)
    orphans = unowned_agents(seen, mapping)
    for tenant, agent in orphans:
        typer.echo(f"unowned: tenant={tenant} agent={agent}")
    typer.echo(f"{len(seen)} agents seen in {days} days, {len(orphans)} unowned")
    if fail and orphans:
        raise typer.Exit(1)


@owners_app.command("escalate")
def owners_escalate(owners: str = typer.Option(..., "--owners", help="Owners YAML file.")) -> None:
    """Publish `escalated` lifecycle events for incidents unacknowledged past their severity's deadline."""
    import time

    from agentaudit.consumers.owners import escalate_due
    from agentaudit.infra.clickhouse import connect
    from agentaudit.infra.kafka import KafkaProducer
    from agentaudit.settings import KafkaSettings, StoreSettings

    mapping = _load_owners_or_exit(owners)
    kafka = KafkaSettings()
    _, service_key = service_authority()  # escalations are signed for system:agentaudit-escalator
    with connect(StoreSettings(), readonly=True) as store, KafkaProducer(kafka) as producer:
        events = escalate_due(store, producer, kafka.topics.lifecycle, mapping, time.time_ns() // 1000,
                              key=service_key)
    for event in events:
        typer.echo(f"escalated {event.incident_id} level {event.attributes['level']} -> {event.assignee or '-'}")
    typer.echo(f"{len(events)} escalations published")
