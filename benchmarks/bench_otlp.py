"""OTLP receiver throughput, against the SDK path recording the same spans in the same run.

Both sides turn the same GenAI spans (agent runs: one ``invoke_agent``, two ``chat`` with model and tokens,
five ``execute_tool`` with JSON arguments digested) into the same actions through an :class:`AuditClient`
on an embedded tansu broker, and both are timed until the broker confirmed every event:

- receiver: ``agentaudit otlp`` in its own process, fed protobuf batches (``BATCH`` spans, as a
  ``BatchSpanProcessor`` sends them) over one keep-alive HTTP connection; its CPU time is read from the
  kernel (``/proc`` when it listens, ``wait4`` rusage when it exited after delivering everything);
- SDK path: :func:`~agentaudit.producers._genai.record_span` on the decoded spans in this process, then a
  flush; its CPU time is ``time.process_time`` (agent thread plus the SDK worker).

The figure is spans per CPU-second (= spans/s per core); the wall rate of the receiver is printed beside it.
``python -m benchmarks otlp`` (``AGENTAUDIT_BENCH_OTLP_SPANS`` sets the spans, default 20000).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentaudit.infra.embedded import TansuBroker, free_port
from agentaudit.producers import AuditClient
from agentaudit.producers._genai import record_span
from agentaudit.producers.otlp_receiver._decode import PROTOBUF, decode_request

BATCH = 256
RUN_SPANS = 8
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - the bearer token of the benchmark's own loopback receiver
_TICK = os.sysconf("SC_CLK_TCK")


def _batches(spans: int) -> list[bytes]:
    """``spans`` GenAI spans as protobuf ``ExportTraceServiceRequest`` bodies of ``BATCH`` spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for run in range(spans // RUN_SPANS):
        with tracer.start_as_current_span("invoke_agent bench-bot", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bench-bot", "run": run}):
            for turn in range(2):
                with tracer.start_as_current_span("chat gpt-4o", attributes={
                        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                        "gen_ai.usage.input_tokens": 812 + turn, "gen_ai.usage.output_tokens": 95}):
                    pass
            for tool in range(5):
                with tracer.start_as_current_span("execute_tool orders.get", attributes={
                        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "orders.get",
                        "gen_ai.tool.call.arguments": json.dumps({"order": run * 10 + tool, "fields": ["status"]})}):
                    pass
    provider.shutdown()
    finished = memory.get_finished_spans()
    return [encode_spans(finished[i:i + BATCH]).SerializeToString() for i in range(0, len(finished), BATCH)]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _receiver(bootstrap: str, batches: list[bytes], tmp: Path) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, spans accepted) of ``agentaudit otlp`` taking ``batches``."""
    tokens = tmp / "tokens.yaml"
    tokens.write_text(f"bench: [{TOKEN}]\n")
    tokens.chmod(0o600)
    port = free_port()
    env = {**os.environ, "AGENTAUDIT_BOOTSTRAP_SERVERS": bootstrap, "AGENTAUDIT_OTLP_SPOOL_DIR": str(tmp / "spool"),
           "AGENTAUDIT_OTLP_TOKENS_FILE": str(tokens), "AGENTAUDIT_OTLP_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "agentaudit.cli", "otlp"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1/traces"
    headers = {"content-type": PROTOBUF, "authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:  # listening, and the tenant's client made and its topic ready (one warm-up batch)
                try:
                    if http.post(url, content=batches[0], headers=headers).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"agentaudit otlp did not come up: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
            time.sleep(2.0)  # the warm-up batch delivered
            cpu0, began = _cpu_seconds(proc.pid), time.perf_counter()
            accepted = 0
            for body in batches:
                while True:
                    answer = http.post(url, content=body, headers=headers)
                    if answer.status_code != 503:
                        break
                    time.sleep(0.05)  # back-pressure: the exporter's retry, shortened
                answer.raise_for_status()
                accepted += BATCH
            wall = time.perf_counter() - began
    finally:
        proc.send_signal(signal.SIGTERM)  # the receiver closes its clients: every event delivered first
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"agentaudit otlp exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_utime + usage.ru_stime - cpu0, wall, accepted


def _sdk_path(bootstrap: str, batches: list[bytes], tmp: Path) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, spans) of the same spans recorded in process through the SDK."""
    spans = [span for body in batches for span in decode_request(body, PROTOBUF, default_agent="otlp").spans]
    with AuditClient(bootstrap_servers=bootstrap, tenant="bench", agent="otlp", spool_dir=tmp / "sdk-spool",
                     queue_max_events=4 * len(spans)) as audit:
        for span in spans[:BATCH]:  # warm-up: topic and producer ready
            record_span(audit, span)
        audit.flush(30)
        cpu0, began = time.process_time(), time.perf_counter()
        for span in spans:
            record_span(audit, span)
        assert audit.flush(120), audit.stats()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - began
        assert audit.stats()["dropped_queue_full"] == 0
    return cpu, wall, len(spans)


def run() -> list[dict]:
    total = int(os.environ.get("AGENTAUDIT_BENCH_OTLP_SPANS", "20000"))
    batches = _batches(total)
    with tempfile.TemporaryDirectory() as tmp, TansuBroker(data_dir=Path(tmp) / "tansu") as broker:
        sdk_cpu, sdk_wall, sdk_spans = _sdk_path(broker.bootstrap, batches, Path(tmp))
        otlp_cpu, otlp_wall, otlp_spans = _receiver(broker.bootstrap, batches, Path(tmp))
    otlp_rate, sdk_rate = otlp_spans / otlp_cpu, sdk_spans / sdk_cpu
    sdk_name = "SDK path: record_span of the same spans in process, until flushed"
    return [
        {"name": f"OTLP receiver, protobuf batches of {BATCH}, per core", "value": otlp_rate, "unit": "spans/CPU-s",
         "baseline": sdk_rate, "baseline_name": sdk_name + " (per CPU-s)", "ratio": otlp_rate / sdk_rate,
         "goal": "report"},
        {"name": "OTLP receiver, wall (one sender, keep-alive)", "value": otlp_spans / otlp_wall, "unit": "spans/s",
         "baseline": sdk_spans / sdk_wall, "baseline_name": sdk_name + " (wall)",
         "ratio": (otlp_spans / otlp_wall) / (sdk_spans / sdk_wall), "goal": "report"},
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']:<50} {row['value']:>10,.0f} {row['unit']}   baseline {row['baseline']:>10,.0f} "
              f"({row['baseline_name']})   ratio {row['ratio']:.2f}")
