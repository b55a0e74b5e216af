"""Peak memory (VmHWM) of the consumer and of an SDK-emitting process.

Consumer: ``agentaudit consume`` (the rule pack) drains N simulator events into the store;
its resident set is read from /proc as the store passes N/4, N/2 and N events, and its peak once everything
is stored. Baseline: a Python process that imports the same modules and does nothing. Whether the consumer's
memory is bounded is the ratio of its RSS at N to its RSS at N/2: the evaluator and the sink remember the last
200,000 event ids each (redeliveries, later copies), so past that only batches and open windows should count.
SDK: a process whose ``AuditClient`` emits M events in bursts of 5000 (flushing between) and flushes; baseline:
the same process creating and closing the client without emitting. ``python -m benchmarks memory``
(``AGENTAUDIT_BENCH_MEMORY_EVENTS`` sets N, default 400000, twice the remembered ids; the SDK emits N/8).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from agentaudit.infra.clickhouse import connect
from benchmarks._stack import embedded_stack, peak_rss_mb, produce, rss_mb, simulated, wait_for

_IDLE_CONSUMER = textwrap.dedent("""
    import agentaudit.cli, agentaudit.consumers.sink, agentaudit.rules, agentaudit.control.listener
    from agentaudit.rules import load_evaluator
    load_evaluator(None)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print(int(line.split()[1]) / 1024)
""")

_SDK = textwrap.dedent("""
    import sys, time
    from agentaudit.producers import AuditClient
    from agentaudit.settings import KafkaSettings
    n, bootstrap, topic, spool = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    client = AuditClient(kafka=KafkaSettings(bootstrap_servers=bootstrap), topic=topic, tenant="bench",
                         agent="mem-bot", spool_dir=spool)
    began = time.perf_counter()
    for i in range(n):
        client.event("decision", name="step", attributes={"i": i, "note": "benchmark event"})
        if i % 5000 == 4999:
            client.flush(60)  # bursts of 5000: the queue never overflows, every event is delivered
    client.flush(120)
    took = time.perf_counter() - began
    stats = client.stats()
    client.close()
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print(int(line.split()[1]) / 1024, stats["delivered"], stats["dropped_queue_full"], took)
""")


def _python(code: str, *args: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                         timeout=300)
    return [float(x) for x in out.stdout.split()]


def run() -> list[dict]:
    total = int(os.environ.get("AGENTAUDIT_BENCH_MEMORY_EVENTS", "400000"))
    emits = max(total // 8, 1)
    log = simulated(total)
    idle_consumer = _python(_IDLE_CONSUMER)[0]
    marks = [total // 4, total // 2, total]
    resident: list[float] = []
    with embedded_stack() as stack, connect(stack.store) as store:
        produce(stack.kafka, log)
        del log
        with stack.consumer() as consumer:
            for mark in marks:
                wait_for(lambda mark=mark: store.query("SELECT count() FROM actions").rows[0][0] >= mark, 600,
                         f"{mark} events stored", poll=0.1)
                resident.append(rss_mb(consumer.pid))
            consumer_peak = peak_rss_mb(consumer.pid)
        spool = str(stack.work / "spool")
        sdk_idle = _python(_SDK, "0", stack.kafka.bootstrap_servers, stack.kafka.topics.actions, spool + "-idle")[0]
        sdk_peak, delivered, dropped, took = _python(_SDK, str(emits), stack.kafka.bootstrap_servers,
                                                     stack.kafka.topics.actions, spool)
    at = ", ".join(f"{rss:.0f} MiB at {mark:,}" for mark, rss in zip(marks, resident, strict=True))
    return [
        {"name": f"consumer peak RSS (agentaudit consume, rule pack, {total:,} events)", "value": consumer_peak,
         "unit": "MiB", "baseline": idle_consumer, "baseline_name": "same imports + rule pack, idle",
         "ratio": consumer_peak / idle_consumer, "goal": None},
        {"name": f"consumer RSS as events are stored ({at})", "value": resident[-1], "unit": "MiB",
         "baseline": resident[1], "baseline_name": f"its RSS at {marks[1]:,} events, same run",
         "ratio": resident[-1] / resident[1], "goal": "bounded: ratio near 1 once the remembered ids are full"},
        {"name": f"SDK process peak RSS ({emits:,} emits in {took:.1f}s, {delivered:.0f} delivered, "
                 f"{dropped:.0f} dropped)", "value": sdk_peak, "unit": "MiB", "baseline": sdk_idle,
         "baseline_name": "same process, client created, no emits", "ratio": sdk_peak / sdk_idle,
         "goal": "bounded by queue_max_bytes"},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
