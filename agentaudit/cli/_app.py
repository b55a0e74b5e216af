"""The root ``agentaudit`` Typer app; each command module registers its commands on it.

Command bodies import their implementation lazily so that ``--help`` stays fast and
no command pays for another's dependencies.
"""

from __future__ import annotations

import typer

from agentaudit import __version__

app = typer.Typer(
    name="agentaudit",
    help="Event-sourced observability, audit and control for AI agent systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the agentaudit version."""
    typer.echo(__version__)
