"""Arize Phoenix as the peer: a local server on SQLite, fed the agent workload as OpenTelemetry spans over
OTLP/HTTP and timed until its GraphQL API counts every span.

The server listens on free loopback ports only, with telemetry and external resources off, so the run makes
no request beyond this machine. Needs the ``peer`` extra (``pip install agentaudit[peer]``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from agentaudit.infra.embedded import ManagedProcess, free_port
from benchmarks._agent_workload import AGENT, Run, record_otel

SKIPPED = "skipped: pip install agentaudit[peer]"
PROJECT = "agentaudit-bench"
_COUNT = '{ projects { edges { node { name recordCount } } } }'


def available() -> bool:
    """Phoenix and the OTLP/HTTP exporter are installed (the ``peer`` extra)."""
    return all(importlib.util.find_spec(name) is not None
               for name in ("phoenix", "opentelemetry.exporter.otlp.proto.http"))


@contextlib.contextmanager
def phoenix_server(work: Path) -> Iterator[str]:
    """``phoenix serve`` on SQLite under ``work``, on free loopback ports; yields its base URL once healthy."""
    port = free_port()
    env = {"PHOENIX_WORKING_DIR": str(work), "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{work / 'phoenix.db'}",
           "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(free_port()),
           "PHOENIX_TELEMETRY_ENABLED": "false", "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
           "PHOENIX_DISABLE_AGENT_ASSISTANT": "true", "PHOENIX_LOG_MIGRATIONS": "false"}
    # its migrations and imports take tens of seconds on a loaded 2-core machine
    server = ManagedProcess("phoenix", [sys.executable, "-m", "phoenix.server.main", "serve"],
                            log_path=work / "phoenix.log", ready_port=port, env=env, ready_timeout=300)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=10) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if http.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"phoenix did not answer /healthz; log {work / 'phoenix.log'}")
                time.sleep(0.2)
        yield url
    finally:
        server.stop()


def span_count(http: httpx.Client, url: str) -> int:
    """Spans of the benchmark's project that Phoenix's GraphQL API counts (what its UI and clients query)."""
    answer = http.post(f"{url}/graphql", json={"query": _COUNT})
    answer.raise_for_status()
    edges = answer.json()["data"]["projects"]["edges"]
    return sum(edge["node"]["recordCount"] for edge in edges if edge["node"]["name"] == PROJECT)


def spans_per_second(url: str, warm_up: list[Run], runs: list[Run], timeout: float = 600.0) -> tuple[float, int]:
    """(spans/s, spans) from the first span of ``runs`` until Phoenix counts all of them, through the stock
    ``BatchSpanProcessor`` and OTLP/HTTP exporter; ``warm_up`` goes first, untimed (project created)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    total = sum(1 + len(run.children) for run in runs)
    provider = TracerProvider(resource=Resource.create({"service.name": AGENT,
                                                        "openinference.project.name": PROJECT}))
    # a queue that holds the whole burst: the default (2,048) would drop spans, and a drop is not ingestion
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces"),
                                                   max_queue_size=total + 1024))
    tracer = provider.get_tracer("agentaudit-bench")
    with httpx.Client(timeout=30) as http:
        before = record_otel(tracer, warm_up)
        provider.force_flush()
        _wait_count(http, url, before, timeout)
        began = time.perf_counter()
        spans = record_otel(tracer, runs)
        provider.force_flush()
        _wait_count(http, url, before + spans, timeout)
        elapsed = time.perf_counter() - began
    provider.shutdown()
    return spans / elapsed, spans


def _wait_count(http: httpx.Client, url: str, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (seen := span_count(http, url)) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"phoenix counted {seen} of {target} spans after {timeout}s")
        time.sleep(0.05)
