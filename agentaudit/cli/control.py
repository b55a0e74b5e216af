"""`agentaudit control ...`: list, clear and kill, each signed by a named operator."""

from __future__ import annotations

from datetime import UTC

import typer

from agentaudit.cli._app import app
from agentaudit.cli._common import control_settings, fail, operator, refusal_exits

control_app = typer.Typer(help="See and steer what agents may do: list, clear and kill. Every command names its actor "
                          "and is signed with your operator key (AGENTAUDIT_OPERATOR_KEY_FILE); readers apply only "
                          "what the authority file (AGENTAUDIT_AUTHORITY_FILE) grants.",
                          no_args_is_help=True)
app.add_typer(control_app, name="control")


@control_app.command("init-authority")
def control_init_authority(
    directory: str = typer.Option(..., "--dir", help="Where to write authority.yaml and keys/ (made if missing)."),
    operator: str = typer.Option(..., help="The first operator's name (principal human:<name>, every grant)."),
) -> None:
    """Make a first authority file: one operator's key, the service key and their grants (what `up` does).

    Writes DIR/authority.yaml and DIR/keys/operator-<name>.key and DIR/keys/agentaudit-service.key (mode 0600);
    existing files are kept as they are, so running it again changes nothing.
    """
    from pathlib import Path

    from agentaudit.control.provision import provision_authority

    made = refusal_exits(provision_authority, Path(directory).expanduser(), operator=operator)
    typer.echo(f"authority file: {made.authority_file} ({'made' if made.created else 'kept'}; AGENTAUDIT_AUTHORITY_FILE)")
    typer.echo(f"operator key: {made.operator_key_file} (mode 0600; AGENTAUDIT_OPERATOR_KEY_FILE of {operator})")
    typer.echo(f"service key: {made.service_key_file} (mode 0600; AGENTAUDIT_SERVICE_KEY_FILE of the consumer, "
               "rules workers and dashboard)")


@control_app.command("list")
def control_list(
    show_all: bool = typer.Option(False, "--all", help="Also show cleared, expired and simulated commands and promotions."),
) -> None:
    """Show the control commands in force (folded from the whole control topic)."""
    import time
    from datetime import datetime

    from rich.console import Console
    from rich.table import Table

    from agentaudit.control import read_control_state
    from agentaudit.exceptions import AgentAuditError

    try:
        authority, _ = operator()
        state = read_control_state(control_settings(), authority=authority)
    except AgentAuditError as exc:
        fail(exc)
    now = time.time_ns() // 1000
    active = {c.command_id for c in state.active(now)}
    shown = state.history if show_all else [c for c in state.history if c.command_id in active]
    shown = list({c.command_id: c for c in shown}.values())

    def when(us: int | None) -> str:
        return "" if us is None else datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")

    table = Table(title=f"control commands ({'all' if show_all else 'in force'})")
    for column in ("command", "type", "agent", "tool", "issuer", "issued", "expires", "state", "reason / incident"):
        table.add_column(column, overflow="fold")
    for c in shown:
        cleared = state.cleared_by(c.command_id)
        status = ("in force" if c.command_id in active else "simulated" if c.simulated
                  else f"cleared by {cleared.issuer.id}" if cleared else "expired" if c.expired(now) else "")
        table.add_row(c.command_id, c.type.value, c.agent_id, c.tool or "", f"{c.issuer.type.value}:{c.issuer.id}",
                      when(c.issued_at_us), when(c.expires_at_us), status,
                      c.reason + (f" (incident {c.incident_id})" if c.incident_id else ""))
    Console().print(table)
    if state.rule_modes and show_all:
        typer.echo("rule modes set by promotion: " + ", ".join(f"{k}={v.value}" for k, v in state.rule_modes.items()))


@control_app.command("clear")
def control_clear(
    command: str = typer.Option(..., "--command", help="Id of the command to lift (see `agentaudit control list`)."),
    actor: str = typer.Option(..., "--actor", help="Your name: recorded on the clear."),
    note: str = typer.Option("", "--note", help="Why it is safe to lift."),
) -> None:
    """Lift a command (pause, block, kill, approval requirement); the clear is recorded with your name."""
    from agentaudit.control import ControlIssuer, read_control_state
    from agentaudit.exceptions import AgentAuditError

    try:
        authority, key = operator(actor)
        kafka = control_settings()
        state = read_control_state(kafka, authority=authority)
        target = next((c for c in state.history if c.command_id == command and c.type.value != "clear"), None)
        if target is None:
            typer.echo(f"error: no command {command!r} on topic {kafka.topics.control!r}; "
                       "see `agentaudit control list --all`", err=True)
            raise typer.Exit(1)
        with ControlIssuer(kafka, key=key) as issuer:
            clear = issuer.clear(target, actor=actor, note=note)
    except AgentAuditError as exc:
        fail(exc)
    typer.echo(f"cleared {target.type.value} {command} on agent {target.agent_id!r} by {actor} (clear {clear.command_id})")


@control_app.command("kill")
def control_kill(
    agent: str = typer.Option(..., "--agent", help="Agent id to stop; '*' stops every agent of the tenant."),
    actor: str = typer.Option(..., "--actor", help="Your name: recorded on the kill."),
    reason: str = typer.Option(..., "--reason", help="Why: shown to the agent's operators and in the audit trail."),
    tenant: str = typer.Option("", "--tenant", help="Limit to this tenant (default: any)."),
    ttl: float = typer.Option(None, "--ttl", help="Seconds until the kill lapses by itself (default: until cleared)."),
) -> None:
    """The kill switch: every action of the agent is refused until the kill is cleared."""
    from agentaudit.control import ControlIssuer
    from agentaudit.exceptions import AgentAuditError

    _authority, key = operator(actor)
    try:
        with ControlIssuer(control_settings(), key=key) as issuer:
            kill = issuer.kill(agent, actor=actor, reason=reason, tenant=tenant, ttl_s=ttl)
    except AgentAuditError as exc:
        fail(exc)
    typer.echo(f"killed agent {agent!r}: command {kill.command_id} by {actor}; lift it with "
               f"`agentaudit control clear --command {kill.command_id} --actor NAME`")
