"""The embedded stack for benchmarks: tansu (memory), an ``agentaudit store`` process, a migrated
database and uuid-named topics; plus ``agentaudit consume`` as a process and peak-RSS probes."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentaudit.consumers.migrate import migrate
from agentaudit.infra.embedded import ManagedProcess, TansuBroker, free_port
from agentaudit.infra.kafka import KafkaAdmin, KafkaProducer
from agentaudit.settings import KafkaSettings, StoreSettings, TopicNames

#: A benchmark consumer's group settings: tansu completes a group join only after half the session timeout,
#: so a short one keeps joins out of the measured time (the tests use the same).
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


@dataclass
class Stack:
    kafka: KafkaSettings
    store: StoreSettings
    work: Path

    def consumer_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTAUDIT_")}
        env.update({"AGENTAUDIT_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
                    "AGENTAUDIT_CLICKHOUSE_URL": self.store.clickhouse_url, "AGENTAUDIT_DATABASE": self.store.database,
                    "AGENTAUDIT_SINK_SESSION_TIMEOUT_MS": "6000", "AGENTAUDIT_SINK_HEARTBEAT_INTERVAL_MS": "1000"})
        env.update({f"AGENTAUDIT_TOPIC_{k.upper()}": v for k, v in self.kafka.topics.model_dump().items()})
        env.update(extra)
        return env

    @contextlib.contextmanager
    def consumer(self, *args: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
        """``agentaudit consume ARGS`` as a process (SIGTERM, then SIGKILL, at the end)."""
        log = (self.work / f"consume-{uuid.uuid4().hex[:6]}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "agentaudit.cli", "consume", *args],
                                   env=self.consumer_env(**env), stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


@contextlib.contextmanager
def embedded_stack(partitions: int = 3) -> Iterator[Stack]:
    work = Path(tempfile.mkdtemp(prefix="agentaudit-bench-"))
    port = free_port()
    server = ManagedProcess("store", [sys.executable, "-m", "agentaudit.infra.store", "--data-dir",
                                      str(work / "store"), "--port", str(port)],
                            log_path=work / "store.log", ready_port=port)
    server.start()
    try:
        store = StoreSettings(clickhouse_url=f"http://127.0.0.1:{port}", database="bench")
        migrate(store)
        with TansuBroker(data_dir=work / "tansu") as broker:
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap,
                                  topics=TopicNames(**{n: f"{prefix}.{n}" for n in TopicNames.model_fields}))
            KafkaAdmin(kafka).ensure_topics(kafka.topics.model_dump().values(), partitions=partitions)
            yield Stack(kafka, store, work)
    finally:
        server.stop()


@functools.lru_cache(maxsize=2)
def simulated(events: int, seed: int = 3) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` of a seeded simulator run whose virtual clock starts yesterday (inside the TTL)."""
    from agentaudit.producers.simulator import SimConfig, Simulator

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    return [(k, v) for k, v, _ in Simulator(SimConfig(seed=seed, events=events, start=start)).events()]


def produce(kafka: KafkaSettings, messages: list[tuple[bytes, bytes]]) -> None:
    with KafkaProducer(kafka, {"linger.ms": 50}) as producer:
        for key, value in messages:
            producer.produce(kafka.topics.actions, value, key=key)
        producer.flush()


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MiB."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    """VmRSS (resident set now) of a live process, in MiB."""
    return _status_mb(pid, "VmRSS")


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark: timed out after {timeout}s waiting for {what}")
        time.sleep(poll)
