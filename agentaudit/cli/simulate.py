"""`agentaudit simulate`: the deterministic fleet and the conversation simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from agentaudit.cli._app import app
from agentaudit.cli._common import refusal_exits, stop_on_signals

if TYPE_CHECKING:
    from agentaudit.schemas import SigningKey


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
    from datetime import datetime

    from pydantic import ValidationError

    from agentaudit.producers.simulator import SimConfig, Simulator

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
        _simulate_conversations(seed=seed, run_nonce=run_nonce, runs=200 if traces is None and out else traces,
                                breach_rate=breach_rate,
                                tenant=tenant[0] if tenant else "acme", out=out, bootstrap=bootstrap, topic=topic,
                                clock=clock, start=start, rate=rate, signing_key=signing_key,
                                checkpoint_events=checkpoint_events, checkpoint_seconds=checkpoint_seconds)
        return
    if out and events is None and traces is None and duration is None:
        events = 10_000
    fields = {"seed": seed, "run_nonce": run_nonce, "agents": agents, "traces": traces, "events": events,
              "duration_s": duration, "fault_rate": fault_rate, "fault_rates": rates,
              "clock": clock or ("virtual" if out else "wall"),
              "tenants": tuple(tenant) if tenant else None, "sessions_per_agent": sessions}
    try:
        if start:
            fields["start"] = datetime.fromisoformat(start)
        config = SimConfig(**{k: v for k, v in fields.items() if v is not None})
    except (ValueError, ValidationError) as exc:
        typer.echo(f"error: bad simulator option: {exc}", err=True)
        raise typer.Exit(2) from exc
    key = _signing_key(signing_key)
    simulator = Simulator(config, signing_key=key, checkpoint_events=checkpoint_events,
                          checkpoint_seconds=checkpoint_seconds)
    stats = _run(simulator, out=out, bootstrap=bootstrap, topic=topic, rate=rate, clock=config.clock,
                 what=f"{agents} agents")
    faults = ", ".join(f"{k}={v}" for k, v in stats.faults.items())
    typer.echo(f"events: {stats.events}  traces: {stats.traces}  errors: {stats.errors}  "
               f"in {stats.elapsed_s:.2f}s ({stats.events_per_s:,.0f} events/s)")
    typer.echo(f"faults injected (traces): {faults}")
    _report_outputs(stats, key, out)




def _simulate_conversations(*, seed: int, run_nonce: str, runs: int | None, breach_rate: float, tenant: str, out: str | None,
                            bootstrap: str | None, topic: str | None, clock: str | None, start: str | None,
                            rate: float, signing_key: str | None, checkpoint_events: int,
                            checkpoint_seconds: float) -> None:
    """``simulate --mode conversation``: conversation runs into a log file or Kafka."""
    from datetime import datetime

    from agentaudit.producers.simulator.conversation import ConversationSource

    clock = clock or ("virtual" if out else "wall")
    if clock not in ("virtual", "wall"):
        typer.echo(f"error: --clock {clock!r}: expected virtual or wall", err=True)
        raise typer.Exit(2)
    start_us = None
    if start:
        try:
            when = datetime.fromisoformat(start)
        except ValueError as exc:
            typer.echo(f"error: --start {start!r}: {exc}", err=True)
            raise typer.Exit(2) from exc
        start_us = int(when.timestamp() * 1_000_000)
    key = _signing_key(signing_key)
    source = ConversationSource(runs, seed=seed, run_nonce=run_nonce, tenant=tenant, breach_rate=breach_rate,
                                clock=clock, start_us=start_us, signing_key=key, checkpoint_events=checkpoint_events,
                                checkpoint_seconds=checkpoint_seconds)
    stats = _run(source, out=out, bootstrap=bootstrap, topic=topic, rate=rate, clock=clock,
                 what=f"{runs or 'endless'} conversations")
    breaches = ", ".join(f"{k}={v}" for k, v in sorted(source.breaches.items())) or "none"
    typer.echo(f"events: {stats.events}  runs: {stats.traces}  errors: {stats.errors}  "
               f"in {stats.elapsed_s:.2f}s ({stats.events_per_s:,.0f} events/s)")
    typer.echo(f"breaches injected (runs): {breaches}")
    _report_outputs(stats, key, out)


def _signing_key(path: str | None) -> SigningKey | None:
    """The checkpoint signing key from --signing-key, or None when streams are only chained."""
    if not path:
        return None
    from pathlib import Path

    from agentaudit.schemas import SigningKey

    return refusal_exits(SigningKey.load, Path(path).expanduser())


def _run(source: Any, *, out: str | None, bootstrap: str | None, topic: str | None, rate: float, clock: str,
         what: str) -> Any:
    """Write ``source`` (fleet or conversations) to a log file, or into Kafka until done or Ctrl-C."""
    from agentaudit.exceptions import AgentAuditError
    from agentaudit.settings import KafkaSettings

    try:
        if out:
            return source.write_log(out)
        import logging

        from agentaudit.logs import configure_logging

        configure_logging(logging.INFO)  # into Kafka it runs until Ctrl-C: AGENTAUDIT_LOG_FORMAT as every such command
        stop = stop_on_signals()
        kafka = KafkaSettings(**({"bootstrap_servers": bootstrap} if bootstrap else {}))
        typer.echo(f"simulating {what} into {topic or kafka.topics.actions} at {kafka.bootstrap_servers} "
                   f"({clock} clock, {f'{rate:g} events/s' if rate else 'unpaced'}); Ctrl-C stops")
        return source.run_to_kafka(kafka, rate, stop, topic=topic)
    except AgentAuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _report_outputs(stats: Any, key: SigningKey | None, out: str | None) -> None:
    """The lines both modes end with: signed checkpoints, and the log file's digest to check a copy against."""
    import hashlib

    if key is not None:
        typer.echo(f"signed checkpoints: {stats.checkpoints} (key {key.key_id})")
    if out:
        with open(out, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        typer.echo(f"log: {out} sha256 {digest}")
