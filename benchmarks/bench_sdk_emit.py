"""SDK emit cost on the agent's thread, against an OpenTelemetry span start+end in the same run.

The baseline is the OTel SDK's own overhead: a ``TracerProvider`` with a ``SimpleSpanProcessor``
around an exporter that does nothing. The SDK side is a real :class:`AuditClient` against an
embedded tansu broker, so its background thread seals and produces while the agent emits (and
competes for the GIL, as it would in production). Each call is timed alone; calls come in bursts
of ``BURST`` and the queue is drained between bursts (untimed), as an agent emits between model
calls. Goal: median ratio <= 1.0 and p99 <= 50 us.
``python -m benchmarks sdk_emit`` (``AGENTAUDIT_BENCH_SDK_CALLS`` sets the timed calls, default 30000).
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from agentaudit.infra.embedded import TansuBroker
from agentaudit.producers import AuditClient

BURST = 500
ROUNDS = 3


class _NoopExporter(SpanExporter):
    def export(self, spans):  # type: ignore[no-untyped-def]  # the OTel SpanExporter hook
        return SpanExportResult.SUCCESS


def _percentiles(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def _time(call: Callable[[], None], calls: int, drain: Callable[[], None]) -> list[int]:
    clock = time.perf_counter_ns
    out: list[int] = []
    for _ in range(0, calls, BURST):
        drain()
        for _ in range(BURST):
            began = clock()
            call()
            out.append(clock() - began)
    return out


def run() -> list[dict]:
    calls = int(os.environ.get("AGENTAUDIT_BENCH_SDK_CALLS", "30000"))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_NoopExporter()))
    tracer = provider.get_tracer("bench")

    def otel_span() -> None:
        with tracer.start_as_current_span("execute_tool db.query"):
            pass

    with tempfile.TemporaryDirectory() as tmp, TansuBroker(data_dir=Path(tmp) / "tansu") as broker:
        audit = AuditClient(broker.bootstrap, tenant="bench", agent="bench-agent", spool_dir=Path(tmp) / "spool",
                            topic="bench.sdk.actions")

        def sdk_action() -> None:
            with audit.action("execute_tool", name="db.query"):
                pass

        args = {"sql": "select * from orders where customer_id = %s and status = %s", "params": [42, "open"],
                "limit": 50, "timeout_s": 5}

        def sdk_action_input() -> None:
            with audit.action("execute_tool", name="db.query", input=args):
                pass

        def sdk_point() -> None:
            audit.decision("route")

        def drain() -> None:
            audit.flush(10)

        def nothing() -> None:
            pass

        sdk_action()
        audit.flush(20)  # topic created, producer connected
        results: dict[str, list[int]] = {"otel": [], "action": [], "point": [], "input": []}
        gc.collect()
        for _ in range(ROUNDS):  # interleaved so drift hits both sides alike
            results["otel"] += _time(otel_span, calls // ROUNDS, nothing)
            results["action"] += _time(sdk_action, calls // ROUNDS, drain)
            results["point"] += _time(sdk_point, calls // ROUNDS, drain)
            results["input"] += _time(sdk_action_input, calls // ROUNDS, drain)
        stats = audit.stats()
        audit.close()
    provider.shutdown()
    otel_med, otel_p99 = _percentiles(results["otel"])
    act_med, act_p99 = _percentiles(results["action"])
    pt_med, pt_p99 = _percentiles(results["point"])
    in_med, in_p99 = _percentiles(results["input"])
    assert stats["dropped_queue_full"] == 0, stats
    otel_name = "OTel span start+end (SimpleSpanProcessor, no-op exporter)"
    return [
        {"name": "SDK action start+end, median", "value": act_med, "unit": "us", "baseline": otel_med,
         "baseline_name": otel_name, "ratio": act_med / otel_med, "goal": "ratio <= 1.0"},
        {"name": "SDK action start+end, p99", "value": act_p99, "unit": "us", "baseline": otel_p99,
         "baseline_name": otel_name + " p99", "ratio": act_p99 / otel_p99, "goal": "<= 50 us"},
        {"name": "SDK action with input digest, median", "value": in_med, "unit": "us", "baseline": otel_med,
         "baseline_name": otel_name, "ratio": in_med / otel_med, "goal": "ratio <= 1.0"},
        {"name": "SDK action with input digest, p99", "value": in_p99, "unit": "us", "baseline": otel_p99,
         "baseline_name": otel_name + " p99", "ratio": in_p99 / otel_p99, "goal": "<= 50 us"},
        {"name": "SDK point event (decision), median", "value": pt_med, "unit": "us", "baseline": otel_med,
         "baseline_name": otel_name, "ratio": pt_med / otel_med, "goal": "ratio <= 1.0"},
        {"name": "SDK point event (decision), p99", "value": pt_p99, "unit": "us", "baseline": otel_p99,
         "baseline_name": otel_name + " p99", "ratio": pt_p99 / otel_p99, "goal": "<= 50 us"},
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']:<40} {row['value']:>8.2f} {row['unit']}   baseline {row['baseline']:>8.2f} "
              f"({row['baseline_name']})   ratio {row['ratio']:.2f}   goal {row['goal']}")
