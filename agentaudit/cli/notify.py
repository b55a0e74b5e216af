"""`agentaudit notify`: tell each incident's owning team, on the routes of the owners file."""

from __future__ import annotations

import typer

from agentaudit.cli._app import app
from agentaudit.cli._common import service_authority, stop_on_signals


@app.command()
def notify(
    owners: str = typer.Option(..., envvar="AGENTAUDIT_OWNERS",
                               help="Owners YAML whose teams name their routes (slack, pagerduty, alertmanager, "
                                    "webhook); see the README's Notifications section."),
    group: str = typer.Option(None, help="Consumer group (AGENTAUDIT_NOTIFY_GROUP, default agentaudit-notify)."),
    state_dir: str = typer.Option(None, help="Outbox directory: what was decided and delivered, so a restart "
                                  "neither loses nor repeats a notification (AGENTAUDIT_NOTIFY_STATE_DIR, "
                                  "default ~/.agentaudit/notify)."),
    dashboard_url: str = typer.Option(None, help="Base URL of the deep link every notification carries "
                                      "(AGENTAUDIT_NOTIFY_DASHBOARD_URL, default http://127.0.0.1:8501)."),
) -> None:
    """Notify owners when an incident opens, is acknowledged, escalates, resolves or reopens, until Ctrl-C.

    Reads the incidents and lifecycle topics in its own group (the sink never waits for it), decides one
    notification per state change and route, retries with back-off, and records each delivery as a `notified`
    lifecycle event (signed with AGENTAUDIT_SERVICE_KEY_FILE when set).
    """
    import logging

    from agentaudit.consumers.notify import Notifier, NotifySettings
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.infra.kafka import KafkaAdmin
    from agentaudit.logs import configure_logging
    from agentaudit.rules.owners import load_owners
    from agentaudit.settings import KafkaSettings

    configure_logging(logging.INFO)
    overrides = {k: v for k, v in {"group": group, "state_dir": state_dir, "dashboard_url": dashboard_url}.items()
                 if v is not None}
    kafka = KafkaSettings()
    authority, service_key = service_authority()
    try:
        notifier = Notifier(kafka, NotifySettings(**overrides), load_owners(owners), key=service_key,
                            authority=authority)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    KafkaAdmin(kafka).ensure_topics([kafka.topics.incidents, kafka.topics.lifecycle])
    typer.echo(f"notifying {len(notifier.routes)} route(s) of {len(notifier.routes.by_team)} team(s); "
               f"outbox {notifier.outbox.path}")
    notifier.run(stop_on_signals())
