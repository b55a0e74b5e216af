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
    rules: str = typer.Option(None, help="Rule file or directory for the consumer and the dashboard "
                              "(default: the built-in pack)."),
    simulate_mode: str = typer.Option(None, "--simulate-mode", help="fleet (default: agents with injected "
                                      "failure modes) or conversation (customer-service conversations with "
                                      "injected policy breaches, AGENTAUDIT_SIMULATE_BREACH_RATE of the runs, "
                                      "default 0.1) (AGENTAUDIT_SIMULATE_MODE)."),
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
    if simulate_mode not in (None, "fleet", "conversation"):
        typer.echo(f"error: --simulate-mode {simulate_mode!r}: expected fleet or conversation", err=True)
        raise typer.Exit(2)
    overrides = {k: v for k, v in {"durable": durable or None, "home": home, "simulate_rate": rate,
                                   "rules": rules, "simulate_mode": simulate_mode}.items() if v is not None}
    console = Console()
    try:
        settings = StackSettings(**overrides)
    except ValueError as exc:  # e.g. an AGENTAUDIT_SIMULATE_BREACH_RATE out of range
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    stack = Stack(settings)
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

    from agentaudit.infra.status import check_all, stack_urls
    from agentaudit.settings import KafkaSettings, StoreSettings

    from agentaudit.infra.stack import CREDENTIALS_FILE, store_credentials

    urls = stack_urls(Path(home))
    kafka = KafkaSettings(**({"bootstrap_servers": urls["broker"]} if "broker" in urls else {}))
    store_options: dict[str, object] = {"clickhouse_url": urls["store"]} if "store" in urls else {}
    if "store" in urls and (Path(home) / CREDENTIALS_FILE).exists():
        store_options["clickhouse_password"] = store_credentials(Path(home)).password  # up's store has a password
    store = StoreSettings(**store_options)  # type: ignore[arg-type]
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
    password: str = typer.Option(None, help="Password of user default, any SQL (AGENTAUDIT_STORE_PASSWORD)."),
    reader_password: str = typer.Option(None, help="Password of user reader, read-only "
                                                   "(AGENTAUDIT_STORE_READER_PASSWORD)."),
    open_metrics: bool = typer.Option(False, help="Serve /metrics without a password (default: behind it)."),
) -> None:
    """Own a chDB directory and serve ClickHouse's HTTP interface on it until Ctrl-C.

    Limits come from AGENTAUDIT_STORE_MAX_EXECUTION_TIME (default 30 s), _MAX_MEMORY_USAGE (2 GiB),
    _MAX_RESULT_BYTES (256 MiB), _MAX_BODY_BYTES (128 MiB), _MAX_QUERY_BYTES (1 MiB), _MAX_CONCURRENT_READS (4),
    _MAX_QUEUED_READS (16), _READ_QUEUE_TIMEOUT (10 s), _READER_MAX_THREADS (half the cores),
    _MAX_CONCURRENT_WRITES (4); see the README's store section.
    """
    import os

    from agentaudit.infra.store.__main__ import DEFAULT_DATA_DIR, run

    code = run(data_dir or os.environ.get("AGENTAUDIT_STORE_DIR", DEFAULT_DATA_DIR), host, port,
               password or os.environ.get("AGENTAUDIT_STORE_PASSWORD"),
               reader_password or os.environ.get("AGENTAUDIT_STORE_READER_PASSWORD"), not open_metrics)
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
def verify(
    store: bool = typer.Option(False, "--store", help="Re-read ClickHouse and check every row against the sink's "
                               "signed digests (action_digests): report rows modified, deleted or added."),
    key: list[str] = typer.Option(None, "--key", help="Trusted digest key file (PEM, public or private; "
                                  "repeatable). Default: the sink's key, AGENTAUDIT_SINK_DIGEST_KEY(.pub)."),
    limit: int = typer.Option(50, help="Findings printed at most (all are counted)."),
    signatures: bool = typer.Option(False, "--signatures", help="Re-read every stored producer stream and check "
                                    "its hash chain and its signed checkpoints with the keys file: report chain "
                                    "breaks, bad/unknown/unauthorized/revoked signatures and rows no valid "
                                    "checkpoint covers."),
    keys_file: str = typer.Option(None, "--keys-file", envvar="AGENTAUDIT_KEYS_FILE",
                                  help="The producer keys file (AGENTAUDIT_KEYS_FILE), for --signatures."),
    tenant: str = typer.Option(None, "--tenant", help="Only this tenant's streams (--signatures)."),
) -> None:
    """Check stored evidence; exit 1 when anything was changed after the fact or cannot be attributed."""
    from pathlib import Path

    from agentaudit.consumers.digests import DigestError, load_public_keys, verify_store
    from agentaudit.consumers.settings import SinkSettings
    from agentaudit.infra.clickhouse import connect
    from agentaudit.infra.exceptions import StoreError
    from agentaudit.settings import StoreSettings

    if not store and not signatures:
        typer.echo("error: say what to verify: --store and/or --signatures", err=True)
        raise typer.Exit(2)
    if signatures and not keys_file:
        typer.echo("error: --signatures needs the producer keys: --keys-file or AGENTAUDIT_KEYS_FILE", err=True)
        raise typer.Exit(2)
    settings = StoreSettings()
    failed = False
    if signatures:
        failed = _verify_signatures(settings, keys_file, tenant, limit)
    if not store:
        if failed:
            raise typer.Exit(1)
        return
    if key:
        paths = [Path(k).expanduser() for k in key]
    else:
        own = SinkSettings().digest_key.expanduser()
        paths = [own.with_name(own.name + ".pub") if own.with_name(own.name + ".pub").exists() else own]
    try:
        keys = load_public_keys(paths)
        with connect(settings, readonly=True) as client:
            report = verify_store(client, keys, retention_days=settings.retention_days)
    except (DigestError, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{settings.database}: {report.digests} digests, {report.rows} rows read, {report.covered} match "
               f"their digest, {report.undigested} stored before digests, {report.expired} past retention")
    if _print_findings(report, limit, ok="ok: nothing was modified, deleted or added after the fact",
                       failed="FAILED") and not failed:
        return
    raise typer.Exit(1)


def _verify_signatures(settings, keys_file: str, tenant: str | None, limit: int) -> bool:  # noqa: ANN001
    """`verify --signatures`: print the report; True when something failed."""
    from pathlib import Path

    from agentaudit.consumers.stream_verify import verify_stream_signatures
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.infra.clickhouse import connect
    from agentaudit.schemas import KeyRing

    try:
        keyring = KeyRing.load(Path(keys_file).expanduser())
        with connect(settings, readonly=True) as client:
            report = verify_stream_signatures(client, keyring, tenant=tenant)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{settings.database}: {report.streams} streams, {report.rows} rows, {report.verified} verified by a "
               f"signed checkpoint, {report.tails} final checkpoint events, {report.unverified} not verified")
    return not _print_findings(report, limit, failed="FAILED signatures",
                               ok="ok: every stream is chained and signed by a key registered for its tenant and agent")


def _print_findings(report, limit: int, *, ok: str, failed: str) -> bool:  # noqa: ANN001 - a verify report
    """Print a verify report's first ``limit`` findings and its verdict line; True when it found nothing."""
    for finding in report.findings[:limit]:
        typer.echo(f"  {finding}")
    if report.ok:
        typer.echo(ok)
        return True
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts().items()))
    more = f" (first {limit} shown)" if len(report.findings) > limit else ""
    typer.echo(f"{failed}: {counts}{more}")
    return False


def _consume_preflight(kafka, store) -> None:  # noqa: ANN001 - KafkaSettings, StoreSettings
    """Fail fast, naming the unreachable part, before anything is started."""
    from agentaudit.consumers.exceptions import ConsumerError
    from agentaudit.infra.clickhouse import connect
    from agentaudit.infra.exceptions import StoreError
    from agentaudit.infra.kafka import KafkaAdmin

    if not KafkaAdmin(kafka).ping(timeout=10):
        raise ConsumerError(f"broker {kafka.bootstrap_servers} is unreachable (no metadata in 10 s); start it or "
                            "fix AGENTAUDIT_BOOTSTRAP_SERVERS")
    try:
        with connect(store) as client:
            client.query("SELECT 1")
    except StoreError as exc:
        raise ConsumerError(f"store {store.redacted_url()} is unreachable: {exc}; start it (agentaudit store) or fix "
                            "AGENTAUDIT_CLICKHOUSE_URL") from exc


@app.command()
def consume(
    group: str = typer.Option(None, help="Consumer group (AGENTAUDIT_SINK_GROUP)."),
    rules: str = typer.Option(None, help="Rule file or directory for the rule engine; default its shipped pack (built-in rules without the engine)."),
    batch_size: int = typer.Option(None, help="Messages per batch (AGENTAUDIT_SINK_BATCH_SIZE)."),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on this port (AGENTAUDIT_SINK_METRICS_PORT)."),
    builtin_rules: bool = typer.Option(False, "--builtin-rules", help="Use only the built-in rules "
                                       "(AGENTAUDIT_SINK_FORBIDDEN_TOOLS, AGENTAUDIT_SINK_COST_THRESHOLD_USD)."),
    owners: str = typer.Option(None, envvar="AGENTAUDIT_OWNERS",
                               help="Owners YAML: incident owners for rules without one, synced to the owners table."),
    state_dir: str = typer.Option(None, envvar="AGENTAUDIT_SINK_STATE_DIR",
                                  help="Keep rule state (open windows) here, snapshotted every batch, so a restart "
                                       "resumes it. Default: none, a restarted consumer starts with empty windows."),
    no_rules: bool = typer.Option(False, "--no-rules", help="Store only, do not judge; store the incidents that "
                                  "`agentaudit rules run` publishes instead (AGENTAUDIT_SINK_INLINE_RULES=false). "
                                  "The scale-out shape: N x `consume --no-rules` + M x `rules run`."),
) -> None:
    """Run the sink: actions and lifecycle events into ClickHouse, judged by the rules, until Ctrl-C.

    Inline rules judge only the partitions this process was assigned, so several `consume` processes in one
    group give incidents that depend on the group's size; to scale out run `consume --no-rules` replicas
    next to `rules run` replicas (incidents re-keyed by tenant, the same for any number of each).

    With AGENTAUDIT_KEYS_FILE (producer keys, see `agentaudit keys`), every producer stream must carry valid signed
    checkpoints: each checkpoint's verdict is stored and the integrity rules raise the rest.

    A tenant that sends nothing for AGENTAUDIT_SINK_IDLE_TIMEOUT_MS (default 5000), with every partition read,
    is quiet: its pending decisions close within that + the lateness (AGENTAUDIT_RULES_LATENESS_MS, 30000).
    """
    import logging
    import signal
    import threading

    from agentaudit.consumers._metrics import SinkMetrics
    from agentaudit.rules.builtin import BuiltinEvaluator
    from agentaudit.consumers.settings import SinkSettings
    from agentaudit.consumers.sink import Sink
    from agentaudit.infra.kafka import KafkaAdmin
    from agentaudit.settings import KafkaSettings, StoreSettings

    from agentaudit.logs import configure_logging

    configure_logging(logging.INFO)  # AGENTAUDIT_LOG_FORMAT=json: one JSON object per line
    overrides = {k: v for k, v in {"group": group, "batch_size": batch_size, "metrics_port": metrics_port}.items()
                 if v is not None}
    if no_rules:
        overrides["inline_rules"] = False
    sink_settings = SinkSettings(**overrides)
    kafka = KafkaSettings()
    if not sink_settings.inline_rules:
        _consume_store_only(kafka, sink_settings, rules=rules, builtin_rules=builtin_rules, owners=owners,
                            state_dir=state_dir)
        return
    try:
        from agentaudit.rules import load_evaluator  # the rule engine, when installed
    except ImportError:
        load_evaluator = None
    if rules and load_evaluator is None:
        typer.echo("error: --rules needs the rule engine (agentaudit.rules), which is not installed", err=True)
        raise typer.Exit(2)
    from agentaudit.exceptions import AgentAuditError

    keyring = _stream_keys()
    from agentaudit.rules.settings import RulesSettings

    lateness_us = RulesSettings().lateness_ms * 1000  # AGENTAUDIT_RULES_LATENESS_MS
    try:
        if load_evaluator is not None and not builtin_rules and rules:
            from agentaudit.consumers.rule_reload import ReloadingEvaluator

            # a changed rule file swaps in between batches, or the old revision stays (logged)
            evaluator = ReloadingEvaluator(
                [rules], load=lambda paths: load_evaluator(paths, owners_path=owners, keyring=keyring,
                                                           lateness_us=lateness_us)).start()
        elif load_evaluator is not None and not builtin_rules:
            evaluator = load_evaluator(None, owners_path=owners, keyring=keyring,  # the pack shipped with agentaudit
                                       lateness_us=lateness_us)
        else:
            evaluator = BuiltinEvaluator(forbidden_tools=sink_settings.forbidden_tools,
                                         cost_threshold_usd=sink_settings.cost_threshold_usd)
        if state_dir:
            from agentaudit.consumers.rule_state import DurableEvaluator

            # inside the control publisher: commands repeated after a restore keep their ids
            evaluator = DurableEvaluator(evaluator, state_dir, name=sink_settings.group)
        _consume_preflight(kafka, StoreSettings())
        if owners:
            from agentaudit.consumers.owners import sync_owners

            sync_owners(StoreSettings(), owners)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    t = kafka.topics
    KafkaAdmin(kafka).ensure_topics([t.actions, t.lifecycle, t.incidents, t.dlq])
    from agentaudit.consumers.control_publisher import ControlPublisher
    from agentaudit.control import ControlListener, ensure_control_topic

    ensure_control_topic(kafka)

    authority, service_key = _service_authority()
    # enforce-mode incidents become control commands; promotions on the control topic set rule modes
    promotions = ControlListener(kafka, agents=(), authority=authority).start()
    evaluator = ControlPublisher(evaluator, kafka, modes=promotions.rule_mode, key=service_key)
    metrics = SinkMetrics()
    if sink_settings.metrics_port is not None:
        metrics.serve(sink_settings.metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    Sink(kafka, StoreSettings(), sink_settings, evaluator, metrics=metrics, authority=authority,
         keyring=keyring).run(stop)


def _consume_store_only(kafka, sink_settings, *, rules, builtin_rules, owners, state_dir) -> None:  # noqa: ANN001
    """`consume --no-rules`: actions, lifecycle events and published incidents into ClickHouse, no judging."""
    import signal
    import threading

    from agentaudit.consumers._metrics import SinkMetrics
    from agentaudit.consumers.sink import Sink
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.infra.kafka import KafkaAdmin
    from agentaudit.settings import StoreSettings

    judging = [name for name, given in (("--rules", rules), ("--builtin-rules", builtin_rules),
                                        ("--state-dir", state_dir)) if given]
    if judging:
        typer.echo(f"error: {', '.join(judging)} configure inline rules, which --no-rules "
                   "(AGENTAUDIT_SINK_INLINE_RULES=false) turns off; give them to `agentaudit rules run` instead",
                   err=True)
        raise typer.Exit(2)
    try:
        _consume_preflight(kafka, StoreSettings())
        if owners:
            from agentaudit.consumers.owners import sync_owners

            sync_owners(StoreSettings(), owners)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    t = kafka.topics
    KafkaAdmin(kafka).ensure_topics([t.actions, t.lifecycle, t.incidents, t.dlq])
    metrics = SinkMetrics()
    if sink_settings.metrics_port is not None:
        metrics.serve(sink_settings.metrics_port)
    authority, _ = _service_authority()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    Sink(kafka, StoreSettings(), sink_settings, metrics=metrics, authority=authority,
         keyring=_stream_keys()).run(stop)


def _stream_keys():  # type: ignore[no-untyped-def] - KeyRing | None
    """The producer keys signed streams are verified with (AGENTAUDIT_KEYS_FILE), or None."""
    from agentaudit.consumers.settings import StreamKeysSettings
    from agentaudit.exceptions import AgentAuditError

    try:
        return StreamKeysSettings().load_keyring()
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _service_authority():  # type: ignore[no-untyped-def] - (Authority | None, SigningKey | None)
    """The authority file and service key of a consumer process (AGENTAUDIT_AUTHORITY_FILE, _SERVICE_KEY_FILE)."""
    from agentaudit.control.settings import AuthoritySettings
    from agentaudit.exceptions import AgentAuditError

    settings = AuthoritySettings()
    try:
        return settings.load_authority(), settings.service_key()
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


# -- the rule engine (helper "rules"): rules lint, rules test --

rules_app = typer.Typer(help="Lint rule files and run their fixtures.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("lint")
def rules_lint(paths: list[str] = typer.Argument(None, help="Rule files or directories; default the shipped pack.")) -> None:
    """Load and compile rule files; print each problem with file, line and rule."""
    from agentaudit.rules.exceptions import RuleError
    from agentaudit.rules import load_rule_set

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


@rules_app.command("show")
def rules_show(
    ids: list[str] = typer.Argument(None, help="Rule ids; default every enabled rule."),
    rules: list[str] = typer.Option(None, "--rules", help="Rule files or directories; default the shipped pack."),
) -> None:
    """Print each rule's effective spec, defaults filled in: by, window, within, lateness, and when it decides."""
    from agentaudit.rules.exceptions import RuleError
    from agentaudit.rules._explain import explain_rules
    from agentaudit.rules.settings import RulesSettings

    try:  # the lateness consume and rules run use (AGENTAUDIT_RULES_LATENESS_MS)
        text = explain_rules(rules or None, ids or (), lateness_us=RulesSettings().lateness_ms * 1000)
    except RuleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(text)


@rules_app.command("test")
def rules_test(
    directory: str = typer.Argument(None, help="Fixture directory or file; default the shipped pack's fixtures."),
    rules: list[str] = typer.Option(None, "--rules", help="Rule files or directories; default the shipped pack."),
    batch_size: int = typer.Option(None, help="Feed events in batches of this size (default: one batch)."),
    shuffle_seed: int = typer.Option(None, help="Interleave streams at random with this seed."),
) -> None:
    """Run fixture event streams (YAML, or JSONL via events_file) and check the expected incidents."""
    from agentaudit.rules.exceptions import RuleError
    from agentaudit.rules.harness import run_fixtures

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


@rules_app.command("run")
def rules_run(
    rules: list[str] = typer.Option(None, "--rules", help="Rule files or directories; default the shipped pack."),
    owners: str = typer.Option(None, "--owners", help="Owners YAML for incidents whose rule names no owner."),
    group: str = typer.Option("agentaudit-rules", help="Consumer group (the re-key loop uses GROUP-rekey)."),
    state_dir: str = typer.Option(None, help="Directory for rule-state snapshots (kept with offsets); shared by "
                                               "the group's instances. Default: none, state restarts empty."),
    idle_timeout_ms: int = typer.Option(None, min=0, help="An actions partition that delivers nothing for this "
                                        "long, read to its end, stops holding windows open until it delivers "
                                        "again; once all are, event time moves on with processing time, so every "
                                        "decision is made within lateness (AGENTAUDIT_RULES_LATENESS_MS, default "
                                        "30000) + this of the last event (AGENTAUDIT_RULES_IDLE_TIMEOUT_MS, "
                                        "default 5000; 0: never idle)."),
) -> None:
    """Run the rules worker: re-key actions by tenant, judge them, publish incidents, until Ctrl-C.

    Ctrl-C/SIGTERM commits and snapshots (--state-dir) what was judged; windows still open stay open for the restart.
    """
    import logging
    import signal
    import threading

    from agentaudit.rules.exceptions import RuleError
    from agentaudit.rules import RulesSettings, load_evaluator
    from agentaudit.consumers.rules_worker import RulesWorker, StateDirectory
    from agentaudit.infra.kafka import KafkaAdmin
    from agentaudit.settings import KafkaSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        evaluator = load_evaluator(rules or None, owners_path=owners, keyring=_stream_keys(),
                                   lateness_us=RulesSettings().lateness_ms * 1000)
    except RuleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    kafka = KafkaSettings()
    t = kafka.topics
    KafkaAdmin(kafka).ensure_topics([t.actions, t.repartition, t.incidents])
    from agentaudit.consumers.control_publisher import ControlPublisher
    from agentaudit.infra.kafka import KafkaProducer
    from agentaudit.control import ControlListener, ensure_control_topic

    ensure_control_topic(kafka)
    # as in `consume`: enforce-mode incidents become control commands; promotions set rule modes
    authority, service_key = _service_authority()
    promotions = ControlListener(kafka, agents=(), authority=authority).start()
    control_producer = KafkaProducer(kafka, {"linger.ms": 0})  # shared by every partition's publisher

    def enforce(inner):  # type: ignore[no-untyped-def]
        return ControlPublisher(inner, kafka, modes=promotions.rule_mode, producer=control_producer, key=service_key)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    typer.echo(f"rules worker: {len(evaluator.rule_set.rules)} rules, revision {evaluator.revision}, group {group}")
    state = StateDirectory(state_dir) if state_dir else None

    idle_ms = RulesSettings().idle_timeout_ms if idle_timeout_ms is None else idle_timeout_ms
    try:
        with RulesWorker(kafka, evaluator, group=group, state=state, wrap=enforce,
                         idle_timeout_ms=idle_ms) as worker:
            worker.run(stop)
    finally:
        promotions.close()
        control_producer.close()


@rules_app.command("diff")
def rules_diff(
    old: str = typer.Argument(..., help="Old rule file or directory."),
    new: str = typer.Argument(..., help="New rule file or directory."),
    start: str = typer.Option(None, "--from", help="Range start (inclusive): ISO 8601 time, epoch microseconds, "
                              "or Kafka offsets of the actions topic as PARTITION:OFFSET pairs (0:1200,1:900; "
                              "a partition not named is unbounded) or all:OFFSET for every partition."),
    end: str = typer.Option(None, "--to", help="Range end (exclusive): a time, or offsets as for --from "
                            "(0:5000,1:4000 or all:5000: the first offset not replayed)."),
) -> None:
    """Replay the recorded actions in a range under two rule sets; print incidents that appear or vanish."""
    from agentaudit.rules.exceptions import RuleError
    from agentaudit.consumers.replay import diff_incidents, parse_range, replay_range
    from agentaudit.infra.clickhouse import connect
    from agentaudit.settings import StoreSettings

    try:
        bounds = parse_range(start, end)
        with connect(StoreSettings(), readonly=True) as store:
            before = replay_range(store, [old], **bounds)
            after = replay_range(store, [new], **bounds)
    except RuleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    appeared, vanished = diff_incidents(before, after)
    for sign, incidents in (("+", appeared), ("-", vanished)):
        for i in incidents:
            typer.echo(f"{sign} {i.rule_id} tenant={i.tenant} key={i.key!r} window={i.window_start_us} "
                       f"count={i.count}: {i.summary}")
    typer.echo(f"{len(before)} -> {len(after)} incidents: {len(appeared)} appear, {len(vanished)} vanish")


@app.command()
def replay(
    rules: list[str] = typer.Option(..., "--rules", help="Rule files or directories to replay."),
    start: str = typer.Option(None, "--from", help="Range start (inclusive): ISO 8601 time, epoch microseconds, "
                              "or Kafka offsets of the actions topic as PARTITION:OFFSET pairs (0:1200,1:900; "
                              "a partition not named is unbounded) or all:OFFSET for every partition."),
    end: str = typer.Option(None, "--to", help="Range end (exclusive): a time, or offsets as for --from "
                            "(0:5000,1:4000 or all:5000: the first offset not replayed)."),
    into: str = typer.Option(..., "--into", help="Database to write the incidents into (created and migrated)."),
    owners: str = typer.Option(None, "--owners", help="Owners YAML for incidents whose rule names no owner."),
) -> None:
    """Re-run a rule revision over a recorded range of the actions table and store its incidents in another database."""
    from agentaudit.rules.exceptions import RuleError
    from agentaudit.consumers.migrate import migrate as apply
    from agentaudit.consumers.replay import parse_range, replay_range, write_incidents
    from agentaudit.infra.clickhouse import connect
    from agentaudit.settings import StoreSettings

    source = StoreSettings()
    target = source.model_copy(update={"database": into})
    try:
        bounds = parse_range(start, end)
        with connect(source, readonly=True) as store:
            incidents = replay_range(store, rules, owners_path=owners, **bounds)
    except RuleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    with connect(source) as admin:
        admin.command(f"CREATE DATABASE IF NOT EXISTS {target.database}")
    apply(target)
    with connect(target) as store:
        written = write_incidents(store, incidents)
    revision = incidents[0].rule_revision if incidents else "-"
    typer.echo(f"replayed {source.database}.actions into {target.database}.incidents: {written} incidents, "
               f"revision {revision}")


owners_app = typer.Typer(help="Who owns which agents, tools, tenants and rules.", no_args_is_help=True)
app.add_typer(owners_app, name="owners")


def _load_owners_or_exit(path: str):  # noqa: ANN202 - returns an OwnershipMap
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
    from agentaudit.rules.owners import unowned_agents
    from agentaudit.infra.clickhouse import connect
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
    _, service_key = _service_authority()  # escalations are signed for system:agentaudit-escalator
    with connect(StoreSettings(), readonly=True) as store, KafkaProducer(kafka) as producer:
        events = escalate_due(store, producer, kafka.topics.lifecycle, mapping, time.time_ns() // 1000,
                              key=service_key)
    for event in events:
        typer.echo(f"escalated {event.incident_id} level {event.attributes['level']} -> {event.assignee or '-'}")
    typer.echo(f"{len(events)} escalations published")


# -- the control plane (helper "control"): control list/clear/kill, rules promote --

control_app = typer.Typer(help="See and steer what agents may do: list, clear and kill. Every command names its actor "
                          "and is signed with your operator key (AGENTAUDIT_OPERATOR_KEY_FILE); readers apply only "
                          "what the authority file (AGENTAUDIT_AUTHORITY_FILE) grants.",
                          no_args_is_help=True)
app.add_typer(control_app, name="control")


def _control_settings():  # type: ignore[no-untyped-def]
    from agentaudit.control import ensure_control_topic
    from agentaudit.settings import KafkaSettings

    kafka = KafkaSettings()
    ensure_control_topic(kafka)
    return kafka


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1) from exc


def _operator(actor: str | None = None):  # type: ignore[no-untyped-def] - (Authority | None, SigningKey | None)
    """The authority (AGENTAUDIT_AUTHORITY_FILE) and operator key (AGENTAUDIT_OPERATOR_KEY_FILE) of a CLI call.

    With ``actor``, refuses early when the authority would refuse the command: no key, or a key that is not
    the actor's (readers would ignore the command and raise an integrity incident).
    """
    from agentaudit.control.admission import warn_unauthenticated
    from agentaudit.control.settings import AuthoritySettings
    from agentaudit.exceptions import AgentAuditError

    settings = AuthoritySettings()
    try:
        authority, key = settings.load_authority(), settings.operator_key()
    except AgentAuditError as exc:
        _fail(exc)
    if authority is None:
        warn_unauthenticated("agentaudit control")
    if actor is not None and authority is not None:
        entry = authority.keys.get(key.key_id) if key is not None else None
        issuer = f"human:{actor}"
        if entry is None:
            typer.echo(f"error: commands must be signed: set AGENTAUDIT_OPERATOR_KEY_FILE to your operator key, "
                       f"registered in {authority.source}" + (f" (key {key.key_id!r} is not)" if key else ""), err=True)
            raise typer.Exit(1)
        if entry.principal != issuer and not any(g.matches(entry.principal) and g.speaks_for(issuer)
                                                 for g in authority.grants):
            typer.echo(f"error: key {key.key_id!r} belongs to {entry.principal}, not {issuer}; "  # type: ignore[union-attr]
                       f"pass --actor {entry.principal.split(':', 1)[1]}", err=True)
            raise typer.Exit(1)
    return authority, key


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

    made = _refusal_exits(provision_authority, Path(directory).expanduser(), operator=operator)
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
    from datetime import datetime, timezone

    from rich.console import Console
    from rich.table import Table

    from agentaudit.exceptions import AgentAuditError
    from agentaudit.control import read_control_state

    try:
        authority, _ = _operator()
        state = read_control_state(_control_settings(), authority=authority)
    except AgentAuditError as exc:
        _fail(exc)
    now = time.time_ns() // 1000
    active = {c.command_id for c in state.active(now)}
    shown = state.history if show_all else [c for c in state.history if c.command_id in active]
    shown = list({c.command_id: c for c in shown}.values())

    def when(us: int | None) -> str:
        return "" if us is None else datetime.fromtimestamp(us / 1e6, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

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
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.control import ControlIssuer, read_control_state

    try:
        authority, key = _operator(actor)
        kafka = _control_settings()
        state = read_control_state(kafka, authority=authority)
        target = next((c for c in state.history if c.command_id == command and c.type.value != "clear"), None)
        if target is None:
            typer.echo(f"error: no command {command!r} on topic {kafka.topics.control!r}; "
                       "see `agentaudit control list --all`", err=True)
            raise typer.Exit(1)
        with ControlIssuer(kafka, key=key) as issuer:
            clear = issuer.clear(target, actor=actor, note=note)
    except AgentAuditError as exc:
        _fail(exc)
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
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.control import ControlIssuer

    authority, key = _operator(actor)
    try:
        with ControlIssuer(_control_settings(), key=key) as issuer:
            kill = issuer.kill(agent, actor=actor, reason=reason, tenant=tenant, ttl_s=ttl)
    except AgentAuditError as exc:
        _fail(exc)
    typer.echo(f"killed agent {agent!r}: command {kill.command_id} by {actor}; lift it with "
               f"`agentaudit control clear --command {kill.command_id} --actor NAME`")


@rules_app.command("promote")
def rules_promote(
    rule: str = typer.Argument(..., help="Rule id."),
    to: str = typer.Option(..., "--to", help="New mode: detect, simulate or enforce."),
    actor: str = typer.Option(..., "--actor", help="Your name: recorded on the promotion."),
    note: str = typer.Option("", "--note", help="Why (e.g. 'a week in simulate, no false positives')."),
    rules: list[str] = typer.Option(None, "--rules", help="Rule files or directories holding the rule; default the pack."),
) -> None:
    """Change a rule's mode, recorded as a promote_rule command on the control topic (consumers and guards obey)."""
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.rules import load_rule_set
    from agentaudit.control import ControlIssuer, read_control_state
    from agentaudit.schemas import RuleMode

    if to not in [m.value for m in RuleMode]:
        typer.echo(f"error: --to must be one of {[m.value for m in RuleMode]}, not {to!r}", err=True)
        raise typer.Exit(2)
    try:
        found = next((r for r in load_rule_set(rules or None).rules if r.id == rule), None)
        if found is None:
            typer.echo(f"error: no enabled rule {rule!r} in the rule files; check the id or pass --rules", err=True)
            raise typer.Exit(1)
        authority, key = _operator(actor)
        kafka = _control_settings()
        current = read_control_state(kafka, authority=authority).rule_modes.get(rule, found.mode)
        with ControlIssuer(kafka, key=key) as issuer:
            command = issuer.promote(rule, to=to, actor=actor, note=note, from_mode=current)
    except AgentAuditError as exc:
        _fail(exc)
    typer.echo(f"rule {rule}: {current.value} -> {to} by {actor} (command {command.command_id})")


# -- the fleet simulator (helper "sim"): simulate --


@app.command()
def simulate(
    seed: int = typer.Option(0, help="Seeds every choice and id; the same seed gives the same log."),
    run_nonce: str = typer.Option("", help="Mixed into the seed and stream ids: runs with different nonces "
                                  "share no id (`agentaudit up` passes a fresh one per start)."),
    agents: int = typer.Option(12, help="Agents in the fleet (five teams, spread over the tenants)."),
    traces: int = typer.Option(None, help="Stop after this many traces."),
    events: int = typer.Option(None, help="Stop after this many events (default 10000 with --out)."),
    duration: float = typer.Option(None, help="Stop after this many seconds of event time."),
    rate: float = typer.Option(0.0, help="Events per second at most; 0 = as fast as possible."),
    fault_rate: float = typer.Option(1.0, help="Multiplies every failure-mode rate; 0 turns faults off."),
    fault: list[str] = typer.Option(None, "--fault", help="Per-trace rate of one failure mode, e.g. loop=0.05 "
                                    "(repeatable; modes: loop budget forbidden unapproved latency error_burst "
                                    "deep fanout hung)."),
    out: str = typer.Option(None, help="Write the log to this file instead of Kafka (format: "
                            "agentaudit.producers.simulator.log)."),
    bootstrap: str = typer.Option(None, help="Kafka bootstrap servers (AGENTAUDIT_BOOTSTRAP_SERVERS)."),
    topic: str = typer.Option(None, help="Topic (default the actions topic, AGENTAUDIT_TOPIC_ACTIONS)."),
    clock: str = typer.Option(None, help="virtual (deterministic; default with --out) or wall (times = now; "
                              "default for Kafka)."),
    start: str = typer.Option(None, help="Virtual clock start, ISO 8601 (default 2026-01-01T00:00:00Z)."),
    tenant: list[str] = typer.Option(None, "--tenant", help="Tenant name (repeatable; default acme, globex)."),
    sessions: int = typer.Option(None, help="Concurrent sessions per agent (wall clock: sized from --rate)."),
    signing_key: str = typer.Option(None, "--signing-key", envvar="AGENTAUDIT_SIGNING_KEY_FILE",
                                    help="Ed25519 private key (PEM, mode 0600; its stem is the key id) that signs "
                                    "checkpoints over every agent's stream, as the SDK does (AGENTAUDIT_SIGNING_KEY_FILE); "
                                    "default: streams are chained, not signed."),
    checkpoint_events: int = typer.Option(1000, envvar="AGENTAUDIT_CHECKPOINT_EVENTS", min=1,
                                          help="With --signing-key: sign at least every this many events of a stream."),
    checkpoint_seconds: float = typer.Option(10.0, envvar="AGENTAUDIT_CHECKPOINT_SECONDS", min=0.001,
                                             help="... and at least every this many seconds of event time."),
    mode: str = typer.Option("fleet", "--mode", help="fleet (agents of five teams with injected failure modes) "
                             "or conversation (multi-turn customer-service runs of 4 support agents: lookups, "
                             "proposals, the user's yes or no, booking writes, tool errors; --traces runs, default "
                             "200 with --out, endless into Kafka; --breach-rate; the first --tenant, default acme; --agents, "
                             "--fault*, --events, --duration, --sessions do not apply)."),
    breach_rate: float = typer.Option(0.0, "--breach-rate", min=0.0, max=1.0,
                                      help="conversation mode: share of runs with one injected policy breach "
                                      "(unconfirmed write, write after refusal, two writes after one yes, forbidden "
                                      "tool, tool loop, fan-out, cost spike)."),
) -> None:
    """Run a deterministic agent fleet with injected failure modes (or customer-service conversations with
    injected policy breaches: --mode conversation), into Kafka or a log file."""
    import hashlib
    import signal
    import threading
    from datetime import datetime

    from pydantic import ValidationError

    from agentaudit.exceptions import AgentAuditError
    from agentaudit.producers.simulator import SimConfig, Simulator
    from agentaudit.settings import KafkaSettings

    rates: dict[str, float] = {}
    for item in fault or []:
        name, sep, value = item.partition("=")
        try:
            rates[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            typer.echo(f"error: --fault {item!r}: expected MODE=RATE, e.g. loop=0.05", err=True)
            raise typer.Exit(2)
    if mode not in ("fleet", "conversation"):
        typer.echo(f"error: --mode {mode!r}: expected fleet or conversation", err=True)
        raise typer.Exit(2)
    if mode == "conversation":
        _simulate_conversations(seed=seed, run_nonce=run_nonce, runs=200 if traces is None and out else traces, breach_rate=breach_rate,
                                tenant=tenant[0] if tenant else "acme", out=out, bootstrap=bootstrap, topic=topic,
                                clock=clock, start=start, rate=rate, signing_key=signing_key,
                                checkpoint_events=checkpoint_events, checkpoint_seconds=checkpoint_seconds)
        return
    if out and events is None and traces is None and duration is None:
        events = 10_000
    fields = {"seed": seed, "run_nonce": run_nonce, "agents": agents, "traces": traces, "events": events,
              "duration_s": duration, "fault_rate": fault_rate, "fault_rates": rates, "clock": clock or ("virtual" if out else "wall"),
              "tenants": tuple(tenant) if tenant else None, "sessions_per_agent": sessions}
    try:
        if start:
            fields["start"] = datetime.fromisoformat(start.replace("Z", "+00:00"))
        config = SimConfig(**{k: v for k, v in fields.items() if v is not None})
    except (ValueError, ValidationError) as exc:
        typer.echo(f"error: bad simulator option: {exc}", err=True)
        raise typer.Exit(2) from exc
    key = None
    if signing_key:
        from pathlib import Path

        from agentaudit.schemas import SigningKey

        key = _refusal_exits(SigningKey.load, Path(signing_key).expanduser())
    simulator = Simulator(config, signing_key=key, checkpoint_events=checkpoint_events,
                          checkpoint_seconds=checkpoint_seconds)
    try:
        if out:
            stats = simulator.write_log(out)
        else:
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            kafka = KafkaSettings(**({"bootstrap_servers": bootstrap} if bootstrap else {}))
            typer.echo(f"simulating {agents} agents into {topic or kafka.topics.actions} at "
                       f"{kafka.bootstrap_servers} ({config.clock} clock, "
                       f"{f'{rate:g} events/s' if rate else 'unpaced'}); Ctrl-C stops")
            stats = simulator.run_to_kafka(kafka, rate, stop, topic=topic)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    faults = ", ".join(f"{k}={v}" for k, v in stats.faults.items())
    typer.echo(f"events: {stats.events}  traces: {stats.traces}  errors: {stats.errors}  "
               f"in {stats.elapsed_s:.2f}s ({stats.events_per_s:,.0f} events/s)")
    typer.echo(f"faults injected (traces): {faults}")
    if key is not None:
        typer.echo(f"signed checkpoints: {stats.checkpoints} (key {key.key_id})")
    if out:
        with open(out, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        typer.echo(f"log: {out} sha256 {digest}")


# -- backfill of recorded runs: import --

import_app = typer.Typer(help="Backfill recorded runs as action events with their real times (through the SDK: "
                         "sealed, chained, judged, replayed and diffed like live events).", no_args_is_help=True)
app.add_typer(import_app, name="import")
_IMPORT_FILES = typer.Argument(..., help="Files to import.", exists=True, dir_okay=False)
_DEAD_LETTER = typer.Option(None, "--dead-letter", help="Write each rejected line here (JSON lines: file, line, "
                            "field, reason, record); the import then exits 0 when only lines were rejected.")


def _import(run, files: list[str], *, tenant: str | None, agent: str | None, bootstrap: str | None,  # noqa: ANN001
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
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.producers.otlp_receiver import OtlpReceiver, OtlpSettings

    given = {"host": host, "port": port, "tokens_file": tokens_file, "include_all": include_all}
    try:
        receiver = OtlpReceiver(OtlpSettings(**{k: v for k, v in given.items() if v is not None}))
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"OTLP receiver on {receiver.url}" + (" (dev mode: no tokens, loopback only)"
                                                     if receiver.tokens.dev_mode else ""))
    receiver.serve_forever()


def _simulate_conversations(*, seed: int, run_nonce: str, runs: int | None, breach_rate: float, tenant: str, out: str | None,
                            bootstrap: str | None, topic: str | None, clock: str | None, start: str | None,
                            rate: float, signing_key: str | None, checkpoint_events: int,
                            checkpoint_seconds: float) -> None:
    """``simulate --mode conversation``: conversation runs into a log file or Kafka."""
    import hashlib
    import signal
    import threading
    from datetime import datetime

    from agentaudit.exceptions import AgentAuditError
    from agentaudit.producers.simulator.conversation import ConversationSource
    from agentaudit.settings import KafkaSettings

    clock = clock or ("virtual" if out else "wall")
    if clock not in ("virtual", "wall"):
        typer.echo(f"error: --clock {clock!r}: expected virtual or wall", err=True)
        raise typer.Exit(2)
    start_us = None
    if start:
        try:
            when = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError as exc:
            typer.echo(f"error: --start {start!r}: {exc}", err=True)
            raise typer.Exit(2) from exc
        start_us = int(when.timestamp() * 1_000_000)
    key = None
    if signing_key:
        from pathlib import Path

        from agentaudit.schemas import SigningKey

        key = _refusal_exits(SigningKey.load, Path(signing_key).expanduser())
    source = ConversationSource(runs, seed=seed, run_nonce=run_nonce, tenant=tenant, breach_rate=breach_rate,
                                clock=clock, start_us=start_us, signing_key=key, checkpoint_events=checkpoint_events,
                                checkpoint_seconds=checkpoint_seconds)
    try:
        if out:
            stats = source.write_log(out)
        else:
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            kafka = KafkaSettings(**({"bootstrap_servers": bootstrap} if bootstrap else {}))
            typer.echo(f"simulating {runs or 'endless'} conversations into {topic or kafka.topics.actions} at "
                       f"{kafka.bootstrap_servers} ({clock} clock, {f'{rate:g} events/s' if rate else 'unpaced'})"
                       "; Ctrl-C stops")
            stats = source.run_to_kafka(kafka, rate, stop, topic=topic)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    breaches = ", ".join(f"{k}={v}" for k, v in sorted(source.breaches.items())) or "none"
    typer.echo(f"events: {stats.events}  runs: {stats.traces}  errors: {stats.errors}  "
               f"in {stats.elapsed_s:.2f}s ({stats.events_per_s:,.0f} events/s)")
    typer.echo(f"breaches injected (runs): {breaches}")
    if key is not None:
        typer.echo(f"signed checkpoints: {stats.checkpoints} (key {key.key_id})")
    if out:
        with open(out, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        typer.echo(f"log: {out} sha256 {digest}")


# -- the dashboard (helper "dashboard"): dashboard --


@app.command()
def dashboard(
    host: str = typer.Option(None, help="Interface to bind (AGENTAUDIT_DASHBOARD_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="TCP port (AGENTAUDIT_DASHBOARD_PORT, default 8501)."),
) -> None:
    """Serve the Streamlit dashboard (read-only store; actions go to Kafka) until Ctrl-C."""
    import signal
    import subprocess

    from agentaudit.dashboard import DashboardSettings, dashboard_command

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


# -- dashboard users (issue 12): who may sign in, one password hash each --

users_app = typer.Typer(help="Who may sign in to the dashboard: one argon2id hash per person in a mode-0600 "
                             "users file (AGENTAUDIT_DASHBOARD_USERS_FILE).", no_args_is_help=True)
app.add_typer(users_app, name="dashboard-users")
_USERS_FILE_HELP = "Users file (AGENTAUDIT_DASHBOARD_USERS_FILE, default .agentaudit/dashboard-users)."


def _refusal_exits(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run a file operation of a CLI command; a refusal (any agentaudit error) prints ``error: ...`` and exits 1."""
    from agentaudit.exceptions import AgentAuditError

    try:
        return fn(*args, **kwargs)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _users_path(path: str | None):  # type: ignore[no-untyped-def]
    from pathlib import Path

    from agentaudit.dashboard import DashboardSettings

    return Path(path) if path else _refusal_exits(lambda: DashboardSettings().users_file)


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
    secret = _refusal_exits(add_user, path, name, team=team, role=role, oidc=oidc,  # type: ignore[arg-type]
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
    secret = _refusal_exits(set_password, path, name, _read_password(password_stdin))
    typer.echo(f"new password for {name} in {path}" + ("" if password_stdin else f": {secret}"))


@users_app.command("remove")
def users_remove(name: str = typer.Argument(..., help="User name."),
                 file: str = typer.Option(None, "--file", help=_USERS_FILE_HELP)) -> None:
    """Remove a user; their open sessions end."""
    from agentaudit.dashboard import remove_user

    path = _users_path(file)
    _refusal_exits(remove_user, path, name)
    typer.echo(f"removed {name} from {path}")


@users_app.command("list")
def users_list(file: str = typer.Option(None, "--file", help=_USERS_FILE_HELP)) -> None:
    """List users, teams, roles and how each signs in (never the hashes)."""
    from agentaudit.dashboard import read_users
    from agentaudit.dashboard.auth import NO_PASSWORD

    for c in _refusal_exits(read_users, _users_path(file)).values():
        typer.echo(f"{c.user.name}\t{c.user.team or '-'}\t{c.user.role}\t"
                   f"{'oidc' if c.hash == NO_PASSWORD else 'password'}")


# -- producer keys (signed streams): keys new, add, rotate, revoke, list --

keys_app = typer.Typer(help="Producer signing keys: make a key, register its public half in the keys file "
                       "(AGENTAUDIT_KEYS_FILE) for a tenant and agents, rotate and revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
_KEYS_FILE = typer.Option(..., "--keys-file", envvar="AGENTAUDIT_KEYS_FILE",
                          help="The keys file consumers verify with (AGENTAUDIT_KEYS_FILE); created when absent.")
_KEY_DIR_HELP = "Where the private key is written (mode 0600), as <dir>/<id>.key."


def _new_private_key(key_id: str, key_dir: str):  # type: ignore[no-untyped-def] - SigningKey
    from pathlib import Path

    from agentaudit.schemas import SigningKey

    path = Path(key_dir).expanduser() / f"{key_id}.key"
    if path.exists():
        typer.echo(f"error: {path} exists; pick another key id (a key file is never overwritten)", err=True)
        raise typer.Exit(1)
    key = _refusal_exits(SigningKey.generate, key_id)
    _refusal_exits(key.save, path)
    typer.echo(f"private key: {path} (mode 0600; give it to the producer as AGENTAUDIT_SIGNING_KEY_FILE)")
    return key


@keys_app.command("new")
def keys_new(
    key_id: str = typer.Argument(..., help="Key id, also the private key's file stem (e.g. acme-support-2026-12)."),
    key_dir: str = typer.Option("~/.agentaudit/keys", "--dir", help=_KEY_DIR_HELP),
    keys_file: str = typer.Option(None, "--keys-file", envvar="AGENTAUDIT_KEYS_FILE",
                                  help="Also register the public key in this keys file (needs --principal)."),
    principal: str = typer.Option(None, help="Who the key belongs to: agent:<id>, human:<id> or service:<id>."),
    tenant: str = typer.Option("*", help="The tenant it may sign for ('*': every tenant)."),
    agent: list[str] = typer.Option(None, "--agent", help="Agent id or glob whose streams it signs (repeatable; "
                                    "default every agent)."),
) -> None:
    """Make an Ed25519 signing key; print its public key, and register it when --keys-file is given."""
    if keys_file and not principal:
        typer.echo("error: registering a key needs --principal (e.g. agent:support-bot)", err=True)
        raise typer.Exit(2)
    key = _new_private_key(key_id, key_dir)
    typer.echo(f"public key: {key.public_key}")
    if keys_file:
        from agentaudit.schemas.keys_file import add_key

        _refusal_exits(add_key, keys_file, key_id=key_id, public_key=key.public_key, principal=principal,
                   tenant=tenant, agents=agent or None)
        typer.echo(f"registered {key_id} in {keys_file} for tenant {tenant!r}, agents {agent or ['*']}")


@keys_app.command("add")
def keys_add(
    key_id: str = typer.Argument(..., help="Key id, as the producer's signatures carry it."),
    public_key: str = typer.Option(..., "--public-key", help="Base64 of the raw 32-byte Ed25519 public key "
                                   "(what `keys new` prints)."),
    principal: str = typer.Option(..., help="agent:<id>, human:<id> or service:<id>."),
    tenant: str = typer.Option("*", help="The tenant it may sign for ('*': every tenant)."),
    agent: list[str] = typer.Option(None, "--agent", help="Agent id or glob (repeatable; default every agent)."),
    not_before: str = typer.Option(None, "--not-before", help="ISO-8601 time it starts to be valid."),
    keys_file: str = _KEYS_FILE,
) -> None:
    """Register a public key someone else made."""
    from agentaudit.schemas.keys_file import add_key

    _refusal_exits(add_key, keys_file, key_id=key_id, public_key=public_key, principal=principal, tenant=tenant,
               agents=agent or None, not_before=not_before)
    typer.echo(f"registered {key_id} in {keys_file}")


@keys_app.command("rotate")
def keys_rotate(
    old_id: str = typer.Argument(..., help="The key being replaced."),
    new_id: str = typer.Argument(..., help="Id of the new key (made here)."),
    key_dir: str = typer.Option("~/.agentaudit/keys", "--dir", help=_KEY_DIR_HELP),
    at: str = typer.Option(None, "--at", help="ISO-8601 moment of the switch (default now): the old key is revoked "
                           "and the new one valid from then."),
    keys_file: str = _KEYS_FILE,
) -> None:
    """Make a new key for what the old one covers and revoke the old one at the same moment.

    Checkpoints the old key signed before the moment still verify; after it they raise integrity.unauthorized-key.
    Point the producer at the new key file (AGENTAUDIT_SIGNING_KEY_FILE) and restart it.
    """
    from agentaudit.schemas.keys_file import read_keys, rotate_key

    ring = _refusal_exits(read_keys, keys_file)
    if old_id not in ring:
        typer.echo(f"error: no key {old_id!r} in {keys_file}; `agentaudit keys list` shows the ids", err=True)
        raise typer.Exit(1)
    key = _new_private_key(new_id, key_dir)
    _refusal_exits(rotate_key, keys_file, old_id, key, at=at)
    typer.echo(f"rotated {old_id} -> {new_id} in {keys_file}; public key: {key.public_key}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="The key to revoke."),
    at: str = typer.Option(None, "--at", help="ISO-8601 time (default now); earlier signatures still verify."),
    keys_file: str = _KEYS_FILE,
) -> None:
    """Revoke a key: signatures at or after the time no longer verify (a stolen key: revoke, then rotate)."""
    from agentaudit.schemas.keys_file import revoke_key

    _refusal_exits(revoke_key, keys_file, key_id, at=at)
    typer.echo(f"revoked {key_id} in {keys_file}")


@keys_app.command("list")
def keys_list(keys_file: str = _KEYS_FILE) -> None:
    """The registered keys: id, principal, tenant, agents, valid from, revoked at."""
    from agentaudit.schemas.keys_file import read_keys

    for entry in _refusal_exits(read_keys, keys_file).to_document()["keys"]:
        typer.echo(f"{entry['id']}\t{entry['principal']}\t{entry['tenant']}\t{','.join(entry['agents'])}\t"
                   f"{entry.get('not_before', '-')}\t{entry.get('revoked_at', '-')}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
