"""`agentaudit dashboard` and `agentaudit dashboard-users ...`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from agentaudit.cli._app import app
from agentaudit.cli._common import refusal_exits

if TYPE_CHECKING:
    from pathlib import Path


@app.command()
def dashboard(
    host: str = typer.Option(None, help="Interface to bind (AGENTAUDIT_DASHBOARD_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="TCP port (AGENTAUDIT_DASHBOARD_PORT, default 8501)."),
) -> None:
    """Serve the Streamlit dashboard (read-only store; actions go to Kafka) until Ctrl-C."""
    import logging
    import signal
    import subprocess

    from agentaudit.dashboard import DashboardSettings, dashboard_command
    from agentaudit.logs import configure_logging

    configure_logging(logging.WARNING)  # AGENTAUDIT_LOG_FORMAT; the Streamlit child logs on its own

    try:
        settings = DashboardSettings()
    except ValueError as exc:  # e.g. the retired shared-password variables are still set
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if settings.auth == "users" and not settings.users_file.exists():
        typer.echo(f"warning: no dashboard users file at {settings.users_file}, so nobody can sign in; "
                   "`agentaudit dashboard-users add NAME --team TEAM` creates it", err=True)
    argv = dashboard_command(port if port is not None else settings.port, host or settings.host)
    typer.echo(f"dashboard: http://{host or settings.host}:{port if port is not None else settings.port}")
    child = subprocess.Popen(argv)  # noqa: S603 - our own app under the running interpreter
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: child.terminate())
    try:
        code = child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if code not in (0, -signal.SIGTERM):
        raise typer.Exit(code if code > 0 else 1)




users_app = typer.Typer(help="Who may sign in to the dashboard: one argon2id hash per person in a mode-0600 "
                             "users file (AGENTAUDIT_DASHBOARD_USERS_FILE).", no_args_is_help=True)
app.add_typer(users_app, name="dashboard-users")
_USERS_FILE_HELP = "Users file (AGENTAUDIT_DASHBOARD_USERS_FILE, default .agentaudit/dashboard-users)."


def _users_path(path: str | None) -> Path:
    from pathlib import Path

    from agentaudit.dashboard import DashboardSettings

    return Path(path) if path else refusal_exits(lambda: DashboardSettings().users_file)


def _read_password(stdin: bool) -> str | None:
    import sys

    return sys.stdin.readline().rstrip("\n") if stdin else None


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="User name (with --oidc: the e-mail the OIDC provider gives)."),
    team: str = typer.Option("", help="Team, offered when assigning incidents."),
    role: str = typer.Option("operator", help="operator (acknowledge, assign, resolve, kill, clear) or viewer."),
    oidc: bool = typer.Option(False, "--oidc", help="Signs in through OIDC only: no password."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password (12+ characters) from stdin instead of a random one."),
    file: str = typer.Option(None, "--file", help=_USERS_FILE_HELP),
) -> None:
    """Add a user; prints the new password once (it is stored only as a hash)."""
    from agentaudit.dashboard import add_user

    path = _users_path(file)
    secret = refusal_exits(add_user, path, name, team=team, role=role, oidc=oidc,
                         password=_read_password(password_stdin))
    typer.echo(f"added {name} ({team or 'no team'}, {role}) to {path}")
    if secret is not None and not password_stdin:
        typer.echo(f"password: {secret}\n(shown once; `agentaudit dashboard-users reset {name}` makes a new one)")


@users_app.command("reset")
def users_reset(
    name: str = typer.Argument(..., help="User name."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password (12+ characters) from stdin instead of a random one."),
    file: str = typer.Option(None, "--file", help=_USERS_FILE_HELP),
) -> None:
    """Give a user a new password (printed once); their open sessions end."""
    from agentaudit.dashboard import set_password

    path = _users_path(file)
    secret = refusal_exits(set_password, path, name, _read_password(password_stdin))
    typer.echo(f"new password for {name} in {path}" + ("" if password_stdin else f": {secret}"))


@users_app.command("remove")
def users_remove(name: str = typer.Argument(..., help="User name."),
                 file: str = typer.Option(None, "--file", help=_USERS_FILE_HELP)) -> None:
    """Remove a user; their open sessions end."""
    from agentaudit.dashboard import remove_user

    path = _users_path(file)
    refusal_exits(remove_user, path, name)
    typer.echo(f"removed {name} from {path}")


@users_app.command("list")
def users_list(file: str = typer.Option(None, "--file", help=_USERS_FILE_HELP)) -> None:
    """List users, teams, roles and how each signs in (never the hashes)."""
    from agentaudit.dashboard import read_users
    from agentaudit.dashboard.auth import NO_PASSWORD

    for c in refusal_exits(read_users, _users_path(file)).values():
        typer.echo(f"{c.user.name}\t{c.user.team or '-'}\t{c.user.role}\t"
                   f"{'oidc' if c.hash == NO_PASSWORD else 'password'}")
