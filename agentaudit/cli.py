"""The ``agentaudit`` command line.

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


# -- commands are registered below, one block per component --------------------------


# -- the embedded stack (lead): up, status --


@app.command()
def up(
    durable: bool = typer.Option(False, "--durable", help="Keep the broker log on SeaweedFS S3 (survives kill -9)."),
    home: str = typer.Option(None, help="Data and logs directory (AGENTAUDIT_HOME, default ./.agentaudit)."),
    rate: float = typer.Option(None, help="Simulated events per second; 0 disables the fleet (default 200)."),
    rules: str = typer.Option(None, help="Rule file or directory for the consumer (default: the built-in pack)."),
) -> None:
    """Start broker, store, consumer, a simulated fleet and the dashboard; Ctrl-C stops them all."""
    import logging
    import signal
    import threading

    from rich.console import Console
    from rich.table import Table

    from agentaudit.exceptions import AgentAuditError
    from agentaudit.infra.embedded import log_tail
    from agentaudit.infra.stack import Stack, StackSettings

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    overrides = {k: v for k, v in {"durable": durable or None, "home": home, "simulate_rate": rate,
                                   "rules": rules}.items() if v is not None}
    console = Console()
    stack = Stack(StackSettings(**overrides))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
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
    console.print(f"ClickHouse: clickhouse_connect.get_client(host='127.0.0.1', port={stack.ports['store']})")
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

    from agentaudit.infra.status import check_all, stack_urls
    from agentaudit.settings import KafkaSettings, StoreSettings

    urls = stack_urls(Path(home))
    kafka = KafkaSettings(**({"bootstrap_servers": urls["broker"]} if "broker" in urls else {}))
    store = StoreSettings(**({"clickhouse_url": urls["store"]} if "store" in urls else {}))
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


# -- the ClickHouse store (helper "store"): store --


@app.command()
def store(
    data_dir: str = typer.Option(None, help="chDB data directory (AGENTAUDIT_STORE_DIR), default ./.agentaudit/store."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; loopback only unless given explicitly."),
    port: int = typer.Option(8123, help="TCP port of the ClickHouse HTTP interface."),
    password: str = typer.Option(None, help="Require this password (AGENTAUDIT_STORE_PASSWORD)."),
) -> None:
    """Own a chDB directory and serve ClickHouse's HTTP interface on it until Ctrl-C."""
    import os

    from agentaudit.infra.store.__main__ import DEFAULT_DATA_DIR, run

    code = run(data_dir or os.environ.get("AGENTAUDIT_STORE_DIR", DEFAULT_DATA_DIR), host, port,
               password or os.environ.get("AGENTAUDIT_STORE_PASSWORD"))
    if code:
        raise typer.Exit(code)


# -- consumers (helper "sink"): migrate, consume --


@app.command()
def migrate() -> None:
    """Create or update the ClickHouse tables (schemas/ddl, in order); safe to run again."""
    from agentaudit.consumers.exceptions import MigrationError
    from agentaudit.consumers.migrate import migrate as apply
    from agentaudit.settings import StoreSettings

    settings = StoreSettings()
    try:
        applied = apply(settings)
    except MigrationError as exc:
        typer.echo(f"error: {exc}\n--- statement ({exc.file}) ---\n{exc.statement}", err=True)
        raise typer.Exit(1) from exc
    for item in applied:
        typer.echo(f"applied {item.name} ({item.statements} statements) to {settings.database}")


@app.command()
def consume(
    group: str = typer.Option(None, help="Consumer group (AGENTAUDIT_SINK_GROUP)."),
    rules: str = typer.Option(None, help="Rule file or directory for the rule engine; default its shipped pack (built-in rules without the engine)."),
    batch_size: int = typer.Option(None, help="Messages per batch (AGENTAUDIT_SINK_BATCH_SIZE)."),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on this port (AGENTAUDIT_SINK_METRICS_PORT)."),
    builtin_rules: bool = typer.Option(False, "--builtin-rules", help="Use only the built-in rules "
                                       "(AGENTAUDIT_SINK_FORBIDDEN_TOOLS, AGENTAUDIT_SINK_COST_THRESHOLD_USD)."),
) -> None:
    """Run the sink: actions and lifecycle events into ClickHouse, judged by the rules, until Ctrl-C."""
    import logging
    import signal
    import threading

    from agentaudit.consumers._metrics import SinkMetrics
    from agentaudit.consumers.builtin_rules import BuiltinEvaluator
    from agentaudit.consumers.settings import SinkSettings
    from agentaudit.consumers.sink import Sink
    from agentaudit.infra.kafka import KafkaAdmin
    from agentaudit.settings import KafkaSettings, StoreSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    overrides = {k: v for k, v in {"group": group, "batch_size": batch_size, "metrics_port": metrics_port}.items()
                 if v is not None}
    sink_settings = SinkSettings(**overrides)
    kafka = KafkaSettings()
    try:
        from agentaudit.consumers.rules import load_evaluator  # the rule engine, when installed
    except ImportError:
        load_evaluator = None
    if rules and load_evaluator is None:
        typer.echo("error: --rules needs the rule engine (agentaudit.consumers.rules), which is not installed", err=True)
        raise typer.Exit(2)
    if load_evaluator is not None and not builtin_rules:
        evaluator = load_evaluator(rules)  # None: the rule pack shipped with agentaudit
    else:
        evaluator = BuiltinEvaluator(forbidden_tools=sink_settings.forbidden_tools,
                                     cost_threshold_usd=sink_settings.cost_threshold_usd)
    t = kafka.topics
    KafkaAdmin(kafka).ensure_topics([t.actions, t.lifecycle, t.incidents, t.dlq])
    metrics = SinkMetrics()
    if sink_settings.metrics_port is not None:
        metrics.serve(sink_settings.metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    Sink(kafka, StoreSettings(), sink_settings, evaluator, metrics=metrics).run(stop)


# -- the rule engine (helper "rules"): rules lint, rules test --

rules_app = typer.Typer(help="Lint rule files and run their fixtures.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("lint")
def rules_lint(paths: list[str] = typer.Argument(None, help="Rule files or directories; default the shipped pack.")) -> None:
    """Load and compile rule files; print each problem with file, line and rule."""
    from agentaudit.consumers.exceptions import RuleError
    from agentaudit.consumers.rules import load_rule_set

    try:
        rule_set = load_rule_set(paths or None)
    except RuleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    kinds: dict[str, int] = {}
    for rule in rule_set.rules:
        kinds[rule.kind] = kinds.get(rule.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    typer.echo(f"ok: {len(rule_set.rules)} rules ({summary}) from {len(rule_set.files)} files, revision {rule_set.revision}")


@rules_app.command("test")
def rules_test(
    directory: str = typer.Argument(None, help="Fixture directory or file; default the shipped pack's fixtures."),
    rules: list[str] = typer.Option(None, "--rules", help="Rule files or directories; default the shipped pack."),
    batch_size: int = typer.Option(None, help="Feed events in batches of this size (default: one batch)."),
    shuffle_seed: int = typer.Option(None, help="Interleave streams at random with this seed."),
) -> None:
    """Run fixture event streams (YAML, or JSONL via events_file) and check the expected incidents."""
    from agentaudit.consumers.exceptions import RuleError
    from agentaudit.consumers.rules.harness import run_fixtures

    try:
        results = run_fixtures(rules or None, directory, batch_size=batch_size, shuffle_seed=shuffle_seed)
    except RuleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    failed = 0
    for result in results:
        where = f"{result.fixture.file}:{result.fixture.line}"
        if result.ok:
            typer.echo(f"PASS {result.fixture.name} ({len(result.incidents)} incidents)")
            continue
        failed += 1
        typer.echo(f"FAIL {result.fixture.name} ({where})")
        for problem in result.problems:
            typer.echo(f"     {problem}")
    typer.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed or not results:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
