"""`agentaudit store`, `migrate` and `verify`: the ClickHouse store and the evidence in it."""

from __future__ import annotations

import typer

from agentaudit.cli._app import app


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
    import logging

    from agentaudit.infra.store.__main__ import run
    from agentaudit.infra.store._settings import StoreServerSettings
    from agentaudit.logs import configure_logging

    configure_logging(logging.INFO)  # AGENTAUDIT_LOG_FORMAT=json: one JSON object per line
    settings = StoreServerSettings()
    code = run(data_dir or settings.dir, host, port, password or settings.secret("password"),
               reader_password or settings.secret("reader_password"), not open_metrics)
    if code:
        raise typer.Exit(code)





@app.command()
def migrate(
    cluster: str = typer.Option(None, "--cluster", help="ClickHouse cluster name (remote_servers): ON CLUSTER DDL, "
                                "Replicated* tables T_local behind Distributed tables T, views over them."),
    print_only: bool = typer.Option(False, "--print", help="Print the SQL (with --cluster: the cluster schema) "
                                    "instead of applying it; connects to nothing."),
) -> None:
    """Create or update the ClickHouse tables (schemas/ddl, in order); safe to run again."""
    from agentaudit.consumers.exceptions import MigrationError
    from agentaudit.consumers.migrate import migrate as apply
    from agentaudit.settings import StoreSettings

    settings = StoreSettings()
    try:
        if print_only:
            from agentaudit.consumers.cluster_ddl import cluster_sql, single_node_sql

            typer.echo(cluster_sql(settings, cluster) if cluster is not None else single_node_sql(settings), nl=False)
            return
        applied = apply(settings, cluster=cluster)
    except MigrationError as exc:
        where = f"\n--- statement ({exc.file}) ---\n{exc.statement}" if exc.statement else ""
        typer.echo(f"error: {exc}{where}", err=True)
        raise typer.Exit(1) from exc
    for item in applied:
        typer.echo(f"applied {item.name} ({item.statements} statements) to {settings.database}"
                   + (f" on cluster {cluster}" if cluster else ""))


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


def _verify_signatures(settings, keys_file: str, tenant: str | None, limit: int) -> bool:
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


def _print_findings(report, limit: int, *, ok: str, failed: str) -> bool:  # report: a verify report
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
