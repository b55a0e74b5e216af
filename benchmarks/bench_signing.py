"""Signed producer streams: what checkpoint signatures cost the agent and the sink (issue 12 item 2).

1. SDK action start+end on the agent's thread with signing on (a real :class:`AuditClient` with an
   Ed25519 key, checkpoint every 1000 events / 10 s, against an embedded tansu broker), against an
   OTel span start+end (SimpleSpanProcessor, no-op exporter) in the same run; the same SDK without
   signing beside it. Calls are timed alone, in bursts of 500 with the queue drained between bursts
   (untimed; the drain also signs each stream's tail). Goal: median ratio <= 0.5.
2. The SDK's thread: actions/s from the first emit until the broker confirmed everything, signing on
   vs off (where the signing work actually lands).
3. Sink throughput with verification vs without: a seeded simulated fleet (12 agents, about one event
   a second each) signed by the simulator with the SDK's checkpoint schedule (a checkpoint every 1000 events
   or 10 s of event time per stream, the SDK's defaults, idle streams included, and a final checkpoint per
   stream), drained by the rule-pack sink without a keys file, then with one (every checkpoint verified,
   its verdict stored, the signature rules judging). Alternated twice, best of each. Goal: ratio >= 0.8.

``python -m benchmarks signing`` (``AGENTAUDIT_BENCH_SDK_CALLS``, default 30000;
``AGENTAUDIT_BENCH_SIGNING_EVENTS``, default 50000).
"""

from __future__ import annotations

import gc
import itertools
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentaudit.infra.embedded import TansuBroker
from agentaudit.producers import AuditClient
from agentaudit.producers.simulator import SimConfig, Simulator
from agentaudit.schemas import KeyRing, SigningKey
from benchmarks._stack import embedded_stack, produce
from benchmarks.bench_sdk_emit import _NoopExporter, _percentiles, _time
from benchmarks.bench_sink import BATCH_SIZE, _drain

ROUNDS = 3
SINK_ROUNDS = 2
CHECKPOINT_EVENTS = 1000
CHECKPOINT_SECONDS = 10.0  # SdkSettings.checkpoint_seconds
OTEL = "OTel span start+end (SimpleSpanProcessor, no-op exporter)"


def _sdk_rows() -> list[dict]:
    calls = int(os.environ.get("AGENTAUDIT_BENCH_SDK_CALLS", "30000"))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_NoopExporter()))
    tracer = provider.get_tracer("bench")

    def otel_span() -> None:
        with tracer.start_as_current_span("execute_tool db.query"):
            pass

    def nothing() -> None:
        pass

    key = SigningKey.generate("bench-1")
    with tempfile.TemporaryDirectory() as tmp, TansuBroker(data_dir=Path(tmp) / "tansu") as broker:
        signed = AuditClient(broker.bootstrap, tenant="bench", agent="signed-agent", spool_dir=Path(tmp) / "s1",
                             topic="bench.signing.actions", signing_key=key)
        plain = AuditClient(broker.bootstrap, tenant="bench", agent="plain-agent", spool_dir=Path(tmp) / "s2",
                            topic="bench.signing.actions")

        def action_of(audit: AuditClient):  # type: ignore[no-untyped-def]  # an Action context
            def action() -> None:
                with audit.action("execute_tool", name="db.query"):
                    pass
            return action

        signed_action, plain_action = action_of(signed), action_of(plain)
        for audit, action in ((signed, signed_action), (plain, plain_action)):
            action()
            audit.flush(20)  # topic created, producer connected
        results: dict[str, list[int]] = {"otel": [], "signed": [], "plain": []}
        gc.collect()
        for _ in range(ROUNDS):  # interleaved so drift hits every side alike
            results["otel"] += _time(otel_span, calls // ROUNDS, nothing)
            results["signed"] += _time(signed_action, calls // ROUNDS, lambda: signed.flush(10))
            results["plain"] += _time(plain_action, calls // ROUNDS, lambda: plain.flush(10))
        # the SDK's thread: emit a block of actions and wait until the broker confirmed all of them
        rates: dict[str, float] = {}
        for name, audit, action in (("plain", plain, plain_action), ("signed", signed, signed_action)) * 2:
            began = time.perf_counter()
            for _ in range(10_000):
                action()
            assert audit.flush(60)
            rates[name] = max(rates.get(name, 0.0), 10_000 / (time.perf_counter() - began))
        checkpoints = signed.stats()["checkpoints"]
        signed.close()
        plain.close()
    provider.shutdown()
    otel_med, _ = _percentiles(results["otel"])
    signed_med, signed_p99 = _percentiles(results["signed"])
    plain_med, _ = _percentiles(results["plain"])
    return [
        {"name": "SDK action start+end, signing on, median", "value": signed_med, "unit": "us",
         "baseline": otel_med, "baseline_name": OTEL, "ratio": signed_med / otel_med, "goal": "ratio <= 0.5"},
        {"name": "SDK action start+end, signing on, p99", "value": signed_p99, "unit": "us", "baseline": None,
         "baseline_name": "", "ratio": None, "goal": "<= 50 us"},
        {"name": "SDK action start+end, signing off, median", "value": plain_med, "unit": "us",
         "baseline": otel_med, "baseline_name": OTEL, "ratio": plain_med / otel_med, "goal": None},
        {"name": f"SDK thread actions/s to confirmed, signing on ({checkpoints} checkpoints)",
         "value": rates["signed"], "unit": "actions/s", "baseline": rates["plain"],
         "baseline_name": "same, signing off, same run (best of 2)", "ratio": rates["signed"] / rates["plain"],
         "goal": None},
    ]


def _signed_fleet(total: int, key: SigningKey) -> tuple[list[tuple[bytes, bytes]], int]:
    """The seeded simulated fleet of :func:`simulated`, signed by the simulator with the SDK's checkpoint schedule
    (producers/_checkpoints.py, on event time) and every stream's tail covered; ``(messages, checkpoints)``."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    sim = Simulator(SimConfig(seed=3, events=total, start=start), signing_key=key,
                    checkpoint_events=CHECKPOINT_EVENTS, checkpoint_seconds=CHECKPOINT_SECONDS)
    out = [(k, v) for k, v, _ in itertools.chain(sim.events(), sim.tail_events())]
    return out, sim.stats.checkpoints


def _sink_rows() -> list[dict]:
    from agentaudit.rules import load_evaluator

    total = int(os.environ.get("AGENTAUDIT_BENCH_SIGNING_EVENTS", "50000"))
    total = max(BATCH_SIZE * 2, total - total % BATCH_SIZE)
    key = SigningKey.generate("bench-fleet-1")
    ring = KeyRing.from_document({"keys": [{"id": key.key_id, "public_key": key.public_key,
                                            "principal": "service:bench-fleet", "tenant": "*", "agents": ["*"]}]})
    messages, checkpoints = _signed_fleet(total, key)
    messages = messages[: len(messages) - len(messages) % BATCH_SIZE]  # no timed batch waits out the timeout
    offs, ons = [], []
    with embedded_stack(partitions=3) as stack:
        produce(stack.kafka, messages)
        for round_ in range(SINK_ROUNDS):
            offs.append(_drain(stack.kafka, stack.store, load_evaluator(), f"bench-verify-off-{round_}",
                               len(messages)))
            ons.append(_drain(stack.kafka, stack.store, load_evaluator(keyring=ring), f"bench-verify-on-{round_}",
                              len(messages)))
    off, on = max(offs), max(ons)
    return [{"name": f"sink events/s (rule pack, signatures verified: {checkpoints} checkpoints in "
                     f"{len(messages)} events, best of {SINK_ROUNDS})", "value": on, "unit": "events/s",
             "baseline": off, "baseline_name": "same sink, no keys file, same run", "ratio": on / off,
             "goal": "ratio >= 0.8"}]


def run() -> list[dict]:
    return _sdk_rows() + _sink_rows()


if __name__ == "__main__":
    for row in run():
        ratio = f" ratio {row['ratio']:.2f}" if row["ratio"] is not None else ""
        print(f"{row['name']}: {row['value']:,.2f} {row['unit']} (baseline {row['baseline_name']}: "
              f"{row['baseline']}){ratio}")
