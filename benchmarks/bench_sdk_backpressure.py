"""Back-pressure: an agent that emits as fast as one thread can, per full policy, beside OTel.

Each policy (``spool``, the default; ``block``; ``drop_oldest``) runs in its own process against one
embedded tansu broker started for this run, so each peak RSS is that policy's alone. The agent runs
``AGENTAUDIT_BENCH_BACKPRESSURE_ACTIONS`` tool calls (default 50000; two events each, with a few
hundred bytes of attributes) back to back, then flushes. Figures per policy: events delivered /
emitted (broker-confirmed), the action's emit cost (start+end, timed per call) median and p99, the
agent's pace (actions/s over the whole run: how far waiting for room slowed it) and the process's peak RSS
above what it used before the client existed. The baseline, same workload in
the same run: OpenTelemetry's ``BatchSpanProcessor`` (default queue 2048, batches of 512 every 5 s)
with an exporter that serializes each span to JSON; its ratio is spans exported / spans started.
``python -m benchmarks sdk_backpressure``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ACTIONS = int(os.environ.get("AGENTAUDIT_BENCH_BACKPRESSURE_ACTIONS", "50000"))
POLICIES = ("spool", "block", "drop_oldest")
#: the same attributes as tests/sdk_load.py: a tool call as an agent records it
ATTRIBUTES = {"tool.args": '{"sql": "select * from invoices where customer_id = ? and status = ?", '
                           '"params": [48213, "open"], "limit": 500}',
              "user": "alice@example.com", "ticket": "OPS-12345", "region": "eu-west-1",
              "note": "nightly reconciliation of open invoices against the ledger export"}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(call, actions: int) -> tuple[list[int], float]:  # type: ignore[no-untyped-def]  # any callable
    clock = time.perf_counter_ns
    samples = []
    began = time.perf_counter()
    for _ in range(actions):
        t0 = clock()
        call()
        samples.append(clock() - t0)
    return samples, time.perf_counter() - began


def _summary(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def _child_sdk(policy: str, bootstrap: str, topic: str, actions: int, spool: str) -> dict:
    from agentaudit.producers import AuditClient

    before = _rss_mb()
    audit = AuditClient(bootstrap, topic=topic, tenant="bench", agent=f"bench-{policy}", spool_dir=spool,
                        full_policy=policy)

    def action() -> None:
        with audit.action("execute_tool", name="db.query", attributes=ATTRIBUTES):
            pass

    samples, emit_s = _timed(action, actions)
    began = time.perf_counter()
    flushed = audit.flush(300)
    flush_s = time.perf_counter() - began
    stats = audit.stats()
    audit.close()
    worst = max(samples) / 1e6
    median, p99 = _summary(samples)
    return {"emitted": 2 * actions, "max_ms": worst, "delivered": stats["delivered"], "median_us": median, "p99_us": p99,
            "rss_mb": _peak_mb() - before, "emit_s": emit_s, "flush_s": flush_s, "flushed": flushed,
            "spooled": stats["spooled"], "dropped": stats["dropped_queue_full"] + stats["dropped_spool_full"]}


def _child_otel(actions: int) -> dict:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    exported = [0]

    class _Serializing(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]  # the OTel SpanExporter hook
            for span in spans:
                span.to_json(indent=None)
            exported[0] += len(spans)
            return SpanExportResult.SUCCESS

    before = _rss_mb()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Serializing()))
    tracer = provider.get_tracer("bench")

    def span() -> None:
        with tracer.start_as_current_span("execute_tool db.query", attributes=ATTRIBUTES):
            pass

    samples, emit_s = _timed(span, actions)
    began = time.perf_counter()
    provider.force_flush(300_000)
    flush_s = time.perf_counter() - began
    provider.shutdown()
    worst = max(samples) / 1e6
    median, p99 = _summary(samples)
    return {"emitted": actions, "delivered": exported[0], "max_ms": worst, "median_us": median, "p99_us": p99,
            "rss_mb": _peak_mb() - before, "emit_s": emit_s, "flush_s": flush_s}


def _spawn(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_sdk_backpressure", "--child", *args],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> list[dict]:
    from agentaudit.infra.embedded import TansuBroker
    from agentaudit.infra.kafka import KafkaAdmin
    from agentaudit.settings import KafkaSettings

    results: dict[str, dict] = {}
    results["otel"] = _spawn("otel", str(ACTIONS))
    with tempfile.TemporaryDirectory() as tmp, TansuBroker(data_dir=Path(tmp) / "tansu") as broker:
        for policy in POLICIES:
            topic = f"bench.backpressure.{policy}"
            KafkaAdmin(KafkaSettings(bootstrap_servers=broker.bootstrap)).ensure_topics([topic], partitions=3)
            results[policy] = _spawn("sdk", policy, broker.bootstrap, topic, str(ACTIONS), str(Path(tmp) / policy))
    otel = results["otel"]
    otel_ratio = otel["delivered"] / otel["emitted"]
    base = "OTel BatchSpanProcessor (defaults, JSON-serializing exporter)"
    rows = [{"name": "OTel spans exported / started", "value": otel_ratio, "unit": "ratio",
             "goal": f"{otel['delivered']:,} of {otel['emitted']:,} spans in {otel['emit_s']:.1f}s; slowest span "
                     f"{otel['max_ms']:,.0f} ms; peak RSS +{otel['rss_mb']:.0f} MB"}]
    for policy in POLICIES:
        r = results[policy]
        ratio = r["delivered"] / r["emitted"]
        note = (f"{r['delivered']:,} of {r['emitted']:,} in {r['emit_s']:.1f}s + flush {r['flush_s']:.1f}s; "
                f"spooled {r['spooled']:,}, dropped {r['dropped']:,}")
        rows += [
            {"name": f"{policy}: delivered / emitted", "value": ratio, "unit": "ratio", "baseline": otel_ratio,
             "baseline_name": base, "ratio": ratio / otel_ratio if otel_ratio else None,
             "goal": ("1.0 (" if policy != "drop_oldest" else "counted drops (") + note + ")"},
            {"name": f"{policy}: action emit median", "value": r["median_us"], "unit": "us",
             "baseline": otel["median_us"], "baseline_name": base + " span", "ratio": r["median_us"] / otel["median_us"],
             "goal": "agent slowed to the SDK's pace" if policy != "drop_oldest" else "never waits"},
            {"name": f"{policy}: action emit p99", "value": r["p99_us"], "unit": "us", "baseline": otel["p99_us"],
             "baseline_name": base + " span p99", "ratio": r["p99_us"] / otel["p99_us"], "goal": ""},
            {"name": f"{policy}: agent pace (actions/s)", "value": ACTIONS / r["emit_s"], "unit": "/s",
             "baseline": ACTIONS / otel["emit_s"], "baseline_name": base + ", spans/s",
             "ratio": otel["emit_s"] / r["emit_s"], "goal": f"slowest emit {r['max_ms']:,.0f} ms"},
            {"name": f"{policy}: SDK peak RSS", "value": r["rss_mb"], "unit": "MB", "baseline": otel["rss_mb"],
             "baseline_name": base, "ratio": r["rss_mb"] / otel["rss_mb"] if otel["rss_mb"] > 0 else None,
             "goal": "bounded by queue_max_bytes + window"},
        ]
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        result = _child_otel(int(rest[0])) if kind == "otel" else _child_sdk(rest[0], rest[1], rest[2],
                                                                             int(rest[3]), rest[4])
        print(json.dumps(result))
    else:
        for row in run():
            print(row)
