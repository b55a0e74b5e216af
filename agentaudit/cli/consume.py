"""`agentaudit consume`: the sink, with inline rules or store-only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from agentaudit.cli._app import app
from agentaudit.cli._common import service_authority, stop_on_signals, stream_keys

if TYPE_CHECKING:
    from agentaudit.consumers._metrics import SinkMetrics
    from agentaudit.consumers.settings import SinkSettings
    from agentaudit.settings import KafkaSettings


def _consume_preflight(kafka, store) -> None:  # KafkaSettings, StoreSettings
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
    rules: str = typer.Option(None, help="Rule file or directory for the rule engine; default its shipped pack "
                                          "(built-in rules without the engine)."),
    batch_size: int = typer.Option(None, help="Messages per batch (AGENTAUDIT_SINK_BATCH_SIZE)."),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on this port (AGENTAUDIT_SINK_METRICS_PORT)."),
    builtin_rules: bool = typer.Option(False, "--builtin-rules", help="Use only the built-in rules "
                                       "(AGENTAUDIT_SINK_FORBIDDEN_TOOLS, AGENTAUDIT_SINK_COST_THRESHOLD_USD)."),
    owners: str = typer.Option(None, envvar="AGENTAUDIT_OWNERS",
                               help="Owners YAML: incident owners for rules without one, synced to the owners table."),
    state_dir: str = typer.Option(None, envvar="AGENTAUDIT_SINK_STATE_DIR",
                                  help="Keep rule state (open windows) here, one snapshot per actions partition at every "
                                       "commit, so a restart, or the sink of the group that gets the partition next, "
                                       "resumes it (put it where every sink of the group can reach). Each partition "
                                       "is judged alone then. Default: none, a restarted consumer starts with empty "
                                       "windows."),
    no_rules: bool = typer.Option(False, "--no-rules", help="Store only, do not judge; store the incidents that "
                                  "`agentaudit rules run` publishes instead (AGENTAUDIT_SINK_INLINE_RULES=false). "
                                  "The scale-out shape: N x `consume --no-rules` + M x `rules run`."),
) -> None:
    """Run the sink: actions and lifecycle events into ClickHouse, judged by the rules, until Ctrl-C.

    Inline rules judge only the partitions this process was assigned, so several `consume` processes in one
    group give incidents that depend on the group's size; to scale out run `consume --no-rules` replicas
    next to `rules run` replicas (actions re-keyed by each rule's key class, the incidents the same for any
    number of each).

    With AGENTAUDIT_KEYS_FILE (producer keys, see `agentaudit keys`), every producer stream must carry valid signed
    checkpoints: each checkpoint's verdict is stored and the integrity rules raise the rest.

    A tenant that sends nothing for AGENTAUDIT_SINK_IDLE_TIMEOUT_MS (default 5000), with every partition read,
    is quiet: its pending decisions close within that + the lateness (AGENTAUDIT_RULES_LATENESS_MS, 30000).
    """
    import logging

    from agentaudit.consumers.settings import SinkSettings
    from agentaudit.consumers.sink import Sink
    from agentaudit.logs import configure_logging
    from agentaudit.rules.builtin import BuiltinEvaluator
    from agentaudit.settings import KafkaSettings, StoreSettings

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
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.rules import load_evaluator

    keyring = stream_keys()
    from agentaudit.rules.settings import RulesSettings

    lateness_us = RulesSettings().lateness_ms * 1000  # AGENTAUDIT_RULES_LATENESS_MS

    def build():  # type: ignore[no-untyped-def]  # a local factory; Evaluator is what it returns
        if not builtin_rules and rules:
            from agentaudit.consumers.rule_reload import ReloadingEvaluator

            # a changed rule file swaps in between batches, or the old revision stays (logged)
            return ReloadingEvaluator(
                [rules], load=lambda paths: load_evaluator(paths, owners_path=owners, keyring=keyring,
                                                           lateness_us=lateness_us)).start()
        if not builtin_rules:
            return load_evaluator(None, owners_path=owners, keyring=keyring,  # the pack shipped with agentaudit
                                  lateness_us=lateness_us)
        return BuiltinEvaluator(forbidden_tools=sink_settings.forbidden_tools,
                                cost_threshold_usd=sink_settings.cost_threshold_usd)

    try:
        evaluator = build()
        store = None
        if state_dir:
            from agentaudit.consumers.rule_state import PartitionStateStore

            store = PartitionStateStore(state_dir)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    _prepare(kafka, owners)
    from agentaudit.consumers.control_publisher import ControlPublisher
    from agentaudit.control import ControlListener, ensure_control_topic

    ensure_control_topic(kafka)

    authority, service_key = service_authority()
    # enforce-mode incidents become control commands; promotions on the control topic set rule modes
    promotions = ControlListener(kafka, agents=(), authority=authority).start()
    partitions = None
    control_producer = None
    if store is not None:
        from agentaudit.consumers.rule_state import PartitionEvaluators
        from agentaudit.infra.kafka import KafkaProducer

        # One evaluator per actions partition, its windows snapshotted at every checkpoint and restored by
        # whichever sink of the group gets the partition; the control publishers share one producer.
        control_producer = KafkaProducer(kafka, {"linger.ms": 0})

        def partition_evaluator():  # type: ignore[no-untyped-def]  # a local factory, as build()
            return ControlPublisher(build(), kafka, modes=promotions.rule_mode, key=service_key,
                                    producer=control_producer)

        partitions = PartitionEvaluators(partition_evaluator, store, sink_settings.group)
    else:
        evaluator = ControlPublisher(evaluator, kafka, modes=promotions.rule_mode, key=service_key)
    metrics = _metrics(sink_settings)
    stop = stop_on_signals()
    try:
        Sink(kafka, StoreSettings(), sink_settings, evaluator, metrics=metrics, authority=authority,
             keyring=keyring, partitions=partitions).run(stop)
    finally:
        if control_producer is not None:
            control_producer.close()


def _consume_store_only(kafka, sink_settings, *, rules, builtin_rules, owners, state_dir) -> None:
    """`consume --no-rules`: actions, lifecycle events and published incidents into ClickHouse, no judging."""

    from agentaudit.consumers.sink import Sink
    from agentaudit.settings import StoreSettings

    judging = [name for name, given in (("--rules", rules), ("--builtin-rules", builtin_rules),
                                        ("--state-dir", state_dir)) if given]
    if judging:
        typer.echo(f"error: {', '.join(judging)} configure inline rules, which --no-rules "
                   "(AGENTAUDIT_SINK_INLINE_RULES=false) turns off; give them to `agentaudit rules run` instead",
                   err=True)
        raise typer.Exit(2)
    _prepare(kafka, owners)
    metrics = _metrics(sink_settings)
    authority, _ = service_authority()
    stop = stop_on_signals()
    Sink(kafka, StoreSettings(), sink_settings, metrics=metrics, authority=authority,
         keyring=stream_keys()).run(stop)


def _prepare(kafka: KafkaSettings, owners: str | None) -> None:
    """What both shapes check and create before consuming: a reachable, migrated store, the owners synced
    into it, and the topics."""
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.infra.kafka import KafkaAdmin
    from agentaudit.settings import StoreSettings

    store = StoreSettings()
    try:
        _consume_preflight(kafka, store)
        if owners:
            from agentaudit.consumers.owners import sync_owners

            sync_owners(store, owners)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    t = kafka.topics
    KafkaAdmin(kafka).ensure_topics([t.actions, t.lifecycle, t.incidents, t.dlq])


def _metrics(sink_settings: SinkSettings) -> SinkMetrics:
    """The sink's Prometheus metrics, served when a port is configured."""
    from agentaudit.consumers._metrics import SinkMetrics

    metrics = SinkMetrics()
    if sink_settings.metrics_port is not None:
        metrics.serve(sink_settings.metrics_port)
    return metrics
