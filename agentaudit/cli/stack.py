"""`agentaudit up` and `agentaudit status`: the embedded stack."""

from __future__ import annotations

import typer

from agentaudit.cli._app import app
from agentaudit.cli._common import stop_on_signals
from agentaudit.logs import configure_logging


@app.command()
def up(
    durable: bool = typer.Option(False, "--durable", help="Keep the broker log on SeaweedFS S3 (survives kill -9)."),
    home: str = typer.Option(None, help="Data and logs directory (AGENTAUDIT_HOME, default ./.agentaudit)."),
    rate: float = typer.Option(None, help="Simulated events per second; 0 disables the fleet (default 200)."),
    rules: str = typer.Option(None, help="Rule file or directory for the consumer and the dashboard "
                              "(default: the built-in pack)."),
    simulate_mode: str = typer.Option(None, "--simulate-mode", help="fleet (default: agents with injected "
                                      "failure modes) or conversation (customer-service conversations with "
                                      "injected policy breaches, AGENTAUDIT_SIMULATE_BREACH_RATE of the runs, "
                                      "default 0.1) (AGENTAUDIT_SIMULATE_MODE)."),
    otlp: bool = typer.Option(None, "--otlp/--no-otlp", help="Start the OTLP/HTTP receiver on 127.0.0.1:4318 "
                              "(AGENTAUDIT_OTLP, default on; AGENTAUDIT_OTLP_PORT, tokens: AGENTAUDIT_OTLP_TOKENS_FILE, "
                              "none: loopback-only dev mode)."),
) -> None:
    """Start broker, store, consumer, notifier, a simulated fleet, the OTLP receiver and the dashboard; Ctrl-C
    stops them all."""
    import logging

    from rich.console import Console
    from rich.table import Table

    from agentaudit.exceptions import AgentAuditError
    from agentaudit.infra.embedded import log_tail
    from agentaudit.infra.stack import Stack, StackSettings

    configure_logging(logging.WARNING)  # AGENTAUDIT_LOG_FORMAT, as in consume
    if simulate_mode not in (None, "fleet", "conversation"):
        typer.echo(f"error: --simulate-mode {simulate_mode!r}: expected fleet or conversation", err=True)
        raise typer.Exit(2)
    overrides = {k: v for k, v in {"durable": durable or None, "home": home, "simulate_rate": rate,
                                   "rules": rules, "simulate_mode": simulate_mode, "otlp": otlp}.items() if v is not None}
    console = Console(soft_wrap=True)  # paths and errors stay on one line, whole when copied
    try:
        settings = StackSettings(**overrides)
    except ValueError as exc:  # e.g. an AGENTAUDIT_SIMULATE_BREACH_RATE out of range
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    stack = Stack(settings)
    stop = stop_on_signals()
    console.print(f"[bold]agentaudit up[/bold]: data and logs in {stack.home}")
    try:
        stack.start(on_started=lambda name, where: console.print(f"  [green]started[/green] {name}: {where}"))
    except AgentAuditError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table(title="agentaudit is running", show_lines=False)
    for column in ("component", "where", "log"):
        table.add_column(column)
    for component in stack._started:
        table.add_row(component.name, component.url, str(component.log))
    console.print(table)
    console.print(f"Dashboard: [bold cyan]{stack.urls['dashboard']}[/bold cyan]")
    if settings.otlp:
        console.print(f"OTLP receiver: [bold cyan]{stack.urls['otlp']}[/bold cyan] (point any OTel exporter's "
                      "traces endpoint here; see its log for dev mode or tokens)", markup=True, highlight=False)
    if stack.first_operator is not None:
        name, password = stack.first_operator
        console.print(f"Dashboard sign-in: user [bold]{name}[/bold], password [bold]{password}[/bold]  (shown once: "
                      f"only its hash is kept, in {stack.users_file}; `agentaudit dashboard-users reset {name} "
                      f"--file {stack.users_file}` makes a new one)", markup=True, highlight=False, soft_wrap=True)
    else:
        console.print(f"Dashboard sign-in: the users in {stack.users_file} (`agentaudit dashboard-users`)")
    console.print(f"ClickHouse (read-only user): {stack.analyst_hint()}", markup=False, highlight=False, soft_wrap=True)
    if stack.authority is not None:
        a = stack.authority
        console.print(f"Control plane: commands are signed and checked against {a.authority_file}; operator "
                      f"{a.operator}'s key is {a.operator_key_file} (mode 0600). To act from a shell: "
                      f"AGENTAUDIT_AUTHORITY_FILE={a.authority_file} AGENTAUDIT_OPERATOR_KEY_FILE={a.operator_key_file} "
                      f"agentaudit control kill --actor {a.operator} ...", markup=False, highlight=False, soft_wrap=True)
    console.print(f"Producer streams: signed and verified against {stack.keys_file}; the simulator signs with "
                  f"{stack.simulator_key_file} (mode 0600). `agentaudit keys new ... --keys-file {stack.keys_file}` "
                  "registers your own agents (restart up after).", markup=False, highlight=False, soft_wrap=True)
    console.print("Press Ctrl-C to stop.")
    dead = stack.wait(stop)
    if dead is not None:
        console.print(f"[red]{dead.name} exited unexpectedly[/red]; its log ({dead.log}):\n{log_tail(dead.log)}")
    console.print("stopping ...")
    stack.stop()
    console.print("stopped.")
    if dead is not None:
        raise typer.Exit(1)


@app.command()
def status(
    home: str = typer.Option(".agentaudit", help="Where `agentaudit up` keeps its state (AGENTAUDIT_HOME)."),
) -> None:
    """Show the health of the broker, the store, the consumer and the dashboard; exit 1 if any is down."""
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from agentaudit.infra.stack import CREDENTIALS_FILE, store_credentials
    from agentaudit.infra.status import check_all, stack_urls
    from agentaudit.settings import KafkaSettings, StoreSettings

    urls = stack_urls(Path(home))
    kafka = KafkaSettings(**({"bootstrap_servers": urls["broker"]} if "broker" in urls else {}))
    store_options: dict[str, object] = {"clickhouse_url": urls["store"]} if "store" in urls else {}
    if "store" in urls and (Path(home) / CREDENTIALS_FILE).exists():
        store_options["clickhouse_password"] = store_credentials(Path(home)).password  # up's store has a password
    store = StoreSettings(**store_options)  # type: ignore[arg-type]  # pydantic validates the two fields
    checks = check_all(kafka, store, dashboard_url=urls.get("dashboard"), metrics_url=urls.get("metrics"))
    table = Table(title="agentaudit status")
    for column in ("component", "target", "state", "detail", "ms"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.component, c.target, "[green]up[/green]" if c.ok else "[red]down[/red]", c.detail,
                      f"{c.millis:.0f}")
    Console().print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
