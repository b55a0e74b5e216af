"""`agentaudit rules ...` and `agentaudit replay`: lint, show, test, run, diff, promote, replay."""

from __future__ import annotations

import typer

from agentaudit.cli._app import app
from agentaudit.cli._common import control_settings, fail, operator, service_authority, stop_on_signals, stream_keys
from agentaudit.logs import configure_logging

rules_app = typer.Typer(help="Lint rule files and run their fixtures.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("lint")
def rules_lint(paths: list[str] = typer.Argument(None, help="Rule files or directories; default the shipped pack.")) -> None:
    """Load and compile rule files; print each problem with file, line and rule."""
    from agentaudit.rules import load_rule_set
    from agentaudit.rules.exceptions import RuleError

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
    from agentaudit.rules._explain import explain_rules
    from agentaudit.rules.exceptions import RuleError
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
    state_dir: str = typer.Option(None, help="Directory for rule-state snapshots (kept with offsets), one file per "
                                               "repartition partition with every key class's state; shared by "
                                               "the group's instances. Default: none, state restarts empty."),
    idle_timeout_ms: int = typer.Option(None, min=0, help="An actions partition that delivers nothing for this "
                                        "long, read to its end, stops holding windows open until it delivers "
                                        "again; once all are, event time moves on with processing time, so every "
                                        "decision is made within lateness (AGENTAUDIT_RULES_LATENESS_MS, default "
                                        "30000) + this of the last event (AGENTAUDIT_RULES_IDLE_TIMEOUT_MS, "
                                        "default 5000; 0: never idle)."),
) -> None:
    """Run the rules worker: re-key actions by rule key class, judge them, publish incidents, until Ctrl-C.

    Each action is copied once per key class that needs it (a rule's trace, by: fields or stream; see `rules show`).

    One tenant is thus judged by every instance of the group, and 1 or N instances decide the same incidents.

    Ctrl-C/SIGTERM commits and snapshots (--state-dir) what was judged; windows still open stay open for the restart.
    """
    import logging

    from agentaudit.consumers.rules_worker import RulesWorker, StateDirectory
    from agentaudit.infra.kafka import KafkaAdmin
    from agentaudit.rules import RulesSettings, load_evaluator
    from agentaudit.rules.exceptions import RuleError
    from agentaudit.settings import KafkaSettings

    configure_logging(logging.INFO)  # AGENTAUDIT_LOG_FORMAT, as in consume
    try:
        evaluator = load_evaluator(rules or None, owners_path=owners, keyring=stream_keys(),
                                   lateness_us=RulesSettings().lateness_ms * 1000)
    except RuleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    kafka = KafkaSettings()
    t = kafka.topics
    KafkaAdmin(kafka).ensure_topics([t.actions, t.repartition, t.incidents])
    from agentaudit.consumers.control_publisher import ControlPublisher
    from agentaudit.control import ControlListener, ensure_control_topic
    from agentaudit.infra.kafka import KafkaProducer

    ensure_control_topic(kafka)
    # as in `consume`: enforce-mode incidents become control commands; promotions set rule modes
    authority, service_key = service_authority()
    promotions = ControlListener(kafka, agents=(), authority=authority).start()
    control_producer = KafkaProducer(kafka, {"linger.ms": 0})  # shared by every partition's publisher

    def enforce(inner):  # type: ignore[no-untyped-def]  # a local factory; ControlPublisher types both ends
        return ControlPublisher(inner, kafka, modes=promotions.rule_mode, producer=control_producer, key=service_key)

    stop = stop_on_signals()
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
    from agentaudit.consumers.replay import diff_incidents, parse_range, replay_range
    from agentaudit.infra.clickhouse import connect
    from agentaudit.rules.exceptions import RuleError
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
    from agentaudit.consumers.migrate import migrate as apply
    from agentaudit.consumers.replay import parse_range, replay_range, write_incidents
    from agentaudit.infra.clickhouse import connect
    from agentaudit.rules.exceptions import RuleError
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




@rules_app.command("promote")
def rules_promote(
    rule: str = typer.Argument(..., help="Rule id."),
    to: str = typer.Option(..., "--to", help="New mode: detect, simulate or enforce."),
    actor: str = typer.Option(..., "--actor", help="Your name: recorded on the promotion."),
    note: str = typer.Option("", "--note", help="Why (e.g. 'a week in simulate, no false positives')."),
    rules: list[str] = typer.Option(None, "--rules", help="Rule files or directories holding the rule; default the pack."),
) -> None:
    """Change a rule's mode, recorded as a promote_rule command on the control topic (consumers and guards obey)."""
    from agentaudit.control import ControlIssuer, read_control_state
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.rules import load_rule_set
    from agentaudit.schemas import RuleMode

    if to not in [m.value for m in RuleMode]:
        typer.echo(f"error: --to must be one of {[m.value for m in RuleMode]}, not {to!r}", err=True)
        raise typer.Exit(2)
    try:
        found = next((r for r in load_rule_set(rules or None).rules if r.id == rule), None)
        if found is None:
            typer.echo(f"error: no enabled rule {rule!r} in the rule files; check the id or pass --rules", err=True)
            raise typer.Exit(1)
        authority, key = operator(actor)
        kafka = control_settings()
        current = read_control_state(kafka, authority=authority).rule_modes.get(rule, found.mode)
        with ControlIssuer(kafka, key=key) as issuer:
            command = issuer.promote(rule, to=to, actor=actor, note=note, from_mode=current)
    except AgentAuditError as exc:
        fail(exc)
    typer.echo(f"rule {rule}: {current.value} -> {to} by {actor} (command {command.command_id})")
