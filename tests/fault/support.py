"""Shared pieces of the fault suite: `agentaudit consume` as a real process, seeded simulator
logs, bulk produce, and the store queries that prove "exactly once"."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentaudit.infra.clickhouse import Store
from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka import KafkaAdmin, KafkaProducer
from agentaudit.producers.simulator import SimConfig, Simulator
from agentaudit.schemas import AvroCodec, Incident
from agentaudit.settings import KafkaSettings, StoreSettings
from tests.child_env import child_env
from tests.fixtures.broker import external_bootstrap

#: librdkafka settings that keep group joins short on tansu (see tests/fixtures/broker.py).
FAST_GROUP = {"AGENTAUDIT_SINK_SESSION_TIMEOUT_MS": "6000", "AGENTAUDIT_SINK_HEARTBEAT_INTERVAL_MS": "1000"}


def stack_env(kafka: KafkaSettings, store: StoreSettings, **extra: str) -> dict[str, str]:
    """The environment of a consumer process pointed at ``kafka``'s topics and ``store``'s database."""
    env = child_env()
    env.update(FAST_GROUP)
    env.update({"AGENTAUDIT_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                "AGENTAUDIT_CLICKHOUSE_URL": store.clickhouse_url, "AGENTAUDIT_DATABASE": store.database,
                "AGENTAUDIT_SINK_BATCH_TIMEOUT_MS": "300", "PYTHONUNBUFFERED": "1"})
    env.update({f"AGENTAUDIT_TOPIC_{k.upper()}": v for k, v in kafka.topics.model_dump().items()})
    env.update(extra)
    return env


class ConsumerProcess:
    """``python -m agentaudit.cli consume ARGS`` (or another ``command``) with its output in a log file."""

    def __init__(self, env: dict[str, str], args: Sequence[str], log_path: Path,
                 command: Sequence[str] = ("consume",)) -> None:
        self.env, self.args, self.log_path, self.command = env, list(args), log_path, list(command)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> ConsumerProcess:
        with self.log_path.open("ab") as log:
            log.write(f"---- start {self.starts + 1}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agentaudit.cli", *self.command, *self.args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill9(self) -> None:
        """SIGKILL: no cleanup, no commit, no leave-group."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (the consumer commits and leaves), SIGKILL if it hangs; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.25,
               alive: Iterable[ConsumerProcess] = ()) -> Any:
    """Poll ``predicate`` until it is truthy; fail naming ``what`` (and any consumer that died)."""
    deadline = time.monotonic() + timeout
    watched = list(alive)
    while True:
        value = predicate()
        if value:
            return value
        for consumer in watched:
            if not consumer.alive:
                raise AssertionError(f"consumer died while waiting for {what}:\n{consumer.log()[-4000:]}")
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {c.log_path.name}:\n{c.log()[-3000:]}" for c in watched)
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r}){logs}")
        time.sleep(poll)


def recent_start() -> datetime:
    """Yesterday 00:00 UTC: a virtual clock start inside the tables' TTL.

    The simulator's default start (2026-01-01) can be older than the 90-day retention of the
    ``actions`` table, and then ClickHouse's TTL merges silently delete the rows under test.
    """
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1)


@functools.lru_cache(maxsize=4)
def simulated_log(seed: int, events: int, **config: Any) -> tuple[tuple[bytes, bytes], ...]:
    """``(key, value)`` of a seeded virtual-clock simulator run starting :func:`recent_start` (cached)."""
    sim = Simulator(SimConfig(seed=seed, events=events, start=recent_start(), **config))
    return tuple((key, value) for key, value, _ in sim.events())


def produce_all(kafka: KafkaSettings, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Produce in bulk and wait for every acknowledgement; the count."""
    failures: list[Any] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(err)

    n = 0
    with KafkaProducer(kafka, {"linger.ms": 20}) as producer:
        for key, value in messages:
            producer.produce(topic, value, key=key, on_delivery=delivered)
            n += 1
        producer.flush()
    assert not failures, failures[:3]
    return n


def expected_incidents(log: Sequence[tuple[bytes, bytes]], rules: str | None = None,
                       batch: int = 2000) -> dict[str, int]:
    """Incident id -> count from the in-process rule engine over the same log (the reference).

    No final ``flush()``: a live consumer never sees the end of its stream, so windows still
    open at the end stay open there too.
    """
    import hashlib

    from agentaudit.rules import load_evaluator
    from agentaudit.schemas import frame_body

    evaluator = load_evaluator(rules)
    codec = AvroCodec("action")
    found: dict[str, int] = {}

    def keep(incidents: list[Incident]) -> None:
        for i in incidents:
            found[i.incident_id] = max(found.get(i.incident_id, 0), i.count)

    for start in range(0, len(log), batch):
        values = [v for _, v in log[start:start + batch]]
        records, indexes, failures = codec.decode_batch(values)
        assert not failures
        for record, index in zip(records, indexes, strict=False):
            record.update(event_hash=hashlib.sha256(frame_body(values[index])).hexdigest(),
                          _partition=0, _offset=start + index, _topic="reference")
        keep(evaluator.evaluate(records))
        keep(evaluator.on_watermark(max(r["event_time_us"] for r in records)))
    return found


def published_backlog(kafka_settings_factory: Callable[..., KafkaSettings],
                      store_settings_factory: Callable[[], StoreSettings], *, seed: int, events: int,
                      partitions: int) -> tuple[tuple[tuple[bytes, bytes], ...], KafkaSettings, StoreSettings,
                                                dict[str, int]]:
    """A seeded simulator log published to fresh topics before any consumer starts, a migrated store, and the
    in-order reference's incidents: ``(log, kafka, store settings, reference)``."""
    from agentaudit.consumers.migrate import migrate

    log = simulated_log(seed, events)
    kafka = kafka_settings_factory(partitions=partitions)
    store_settings = store_settings_factory()
    migrate(store_settings)
    produce_all(kafka, kafka.topics.actions, log)
    return log, kafka, store_settings, expected_incidents(log)


def assert_incidents_equal(stored: dict[str, int], reference: dict[str, int], against: str) -> None:
    """Every incident id with the same count on both sides; the message names how many differ and five of them."""
    diff = {i: (stored.get(i), reference.get(i)) for i in stored.keys() | reference.keys()
            if stored.get(i) != reference.get(i)}
    assert not diff, (f"{len(diff)} of {len(reference)} incidents differ from the {against} "
                      f"(id -> (stored count, reference count)): {sorted(diff.items())[:5]}")


def count_final(store: Store, table: str = "actions") -> int:
    return int(store.query(f"SELECT count() FROM {table} FINAL").rows[0][0])


def duplicated_events(store: Store) -> int:
    """Event ids seen more than once even under FINAL (must be 0)."""
    return int(store.query("SELECT count() FROM (SELECT event_id FROM actions FINAL GROUP BY event_id "
                           "HAVING count() > 1)").rows[0][0])


def stored_incidents(store: Store) -> dict[str, int]:
    """Incident id -> count under FINAL; asserts no id appears twice."""
    rows = store.query("SELECT incident_id, count FROM incidents FINAL").rows
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "an incident id appears twice under FINAL"
    return {r[0]: int(r[1]) for r in rows}


def child_pids(pid: int) -> list[int]:
    """Live children of ``pid`` read from /proc (psutil is not a dependency)."""
    children = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(status.parent.name))
    return children


BROKER_SH = Path(__file__).resolve().parents[2] / ".ci" / "kafka" / "broker.sh"
CLUSTER_REQUIRED = ("needs a cluster of >= 3 Apache Kafka brokers from .ci/kafka/start.sh "
                    "(AGENTAUDIT_KAFKA_BROKERS=3, AGENTAUDIT_KAFKA_STATE and AGENTAUDIT_TEST_BOOTSTRAP set)")


def cluster_size() -> int:
    """Nodes of the cluster .ci/kafka/start.sh started for this run; 0 without one."""
    state = os.environ.get("AGENTAUDIT_KAFKA_STATE")
    if not external_bootstrap() or not state or not (Path(state) / "brokers").is_file():
        return 0
    return int((Path(state) / "brokers").read_text())


def wait_for_layout(admin: KafkaAdmin, topic: str, timeout: float) -> dict[int, tuple[int, list[int], list[int]]]:
    """The topic's partitions (leader, replicas, in-sync replicas) once a broker's metadata has it: right after
    a topic is created, another broker may not know it yet."""

    def layout() -> dict[int, tuple[int, list[int], list[int]]] | None:
        try:
            return admin.describe_partitions(topic)
        except KafkaError:
            return None

    return wait_until(layout, timeout, f"{topic} in metadata")


def cluster_node(action: str, node: int) -> None:
    """``kill`` (SIGKILL, waits until gone) or ``start`` (waits until started) one node of that cluster."""
    subprocess.run(["bash", str(BROKER_SH), action, str(node)], check=True, timeout=180)
