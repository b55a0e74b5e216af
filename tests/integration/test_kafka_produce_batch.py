"""A window produced in one call leaves in one request per partition, even on a busy machine (4 processes
spinning on the CPU); produced one message at a time with pauses longer than ``linger.ms`` it leaves in
several (the SDK's windows rely on the first).

Several requests per window are what let a later request succeed after an earlier one failed (a broker
restart between them, with ``retries=0``), so that the re-send of the failed events lands behind events
sealed after them: a stream out of order. librdkafka queues even a ``produce_batch`` call's messages one by
one, so the SDK's ``linger.ms`` (20) is what keeps a descheduled producing thread from splitting a window;
at 5 ms a window split on the busy machine in 1 of 12 cases (6 runs), at 20 ms in none of 24.
The batches are counted by librdkafka's own statistics.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agentaudit.infra.kafka import KafkaProducer
from agentaudit.producers._worker import SDK_PRODUCER_CONFIG, WINDOW_BYTES, WINDOW_EVENTS
from agentaudit.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.broker]

VALUE = b"v" * (WINDOW_BYTES // WINDOW_EVENTS - 40)  # a full window of the SDK's size, key included
KEYS = [f"stream-{n:02d}-".encode() + b"k" * 30 for n in range(8)]  # 8 streams, 40 bytes each, as the SDK's
WINDOWS = 3
PAUSE_S = SDK_PRODUCER_CONFIG["linger.ms"] / 1000 + 0.01  # the producing thread descheduled for longer than linger


def _batches(stats: list[dict[str, Any]], topic: str) -> int:
    """Record batches the producer has sent to ``topic`` so far (librdkafka counts them per statistics interval)."""
    return sum(s["topics"].get(topic, {}).get("batchcnt", {}).get("cnt", 0) for s in stats)


def _send_windows(kafka: KafkaSettings, topic: str,
                  produce_window: Callable[[KafkaProducer, list], None]) -> tuple[int, int]:
    """``(record batches sent, the least they could be)``: each window's partitions, summed over the windows."""
    stats: list[dict[str, Any]] = []
    config = {k: v for k, v in SDK_PRODUCER_CONFIG.items() if k != "log_level"}
    config.update({"statistics.interval.ms": 100, "stats_cb": lambda raw: stats.append(json.loads(raw))})
    delivered: list[object] = []
    least = 0
    with KafkaProducer(kafka, config) as producer:
        for sent in range(1, WINDOWS + 1):
            partitions: set[int] = set()

            def report(err: object, msg: Any, partitions: set[int] = partitions) -> None:
                delivered.append(err)
                partitions.add(msg.partition())

            window = [(KEYS[i % len(KEYS)], VALUE, report) for i in range(WINDOW_EVENTS)]
            produce_window(producer, window)
            deadline = time.monotonic() + 30
            while len(delivered) < sent * WINDOW_EVENTS:  # the next window after every report of this one
                producer.poll(0.01)
                assert time.monotonic() < deadline, f"{len(delivered)} reports"
            least += len(partitions)
        time.sleep(0.3)  # one more statistics interval
        producer.poll(0.2)
    assert len(delivered) == WINDOWS * WINDOW_EVENTS and not any(delivered)
    return _batches(stats, topic), least


@contextmanager
def _busy_machine(processes: int = 4) -> Iterator[None]:
    """Processes spinning on the CPU, so that the producing thread is descheduled often, as on a loaded host."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@pytest.mark.parametrize("partitions", [1, 3])
def test_a_window_in_one_call_leaves_in_one_batch_per_partition(
        partitions: int, kafka_settings_factory: Callable[..., KafkaSettings]) -> None:
    kafka = kafka_settings_factory(partitions=partitions)
    topic = kafka.topics.actions

    def one_by_one(producer: KafkaProducer, window: list) -> None:
        for i, (key, value, callback) in enumerate(window):
            producer.produce(topic, value, key=key, on_delivery=callback)
            if i % 500 == 499:
                time.sleep(PAUSE_S)

    def in_one_call(producer: KafkaProducer, window: list) -> None:
        assert not any(producer.produce_batch(topic, window))

    split, least = _send_windows(kafka, topic, one_by_one)
    with _busy_machine():
        whole, least_whole = _send_windows(kafka, topic, in_one_call)
    print(f"\n[produce batch] {WINDOWS} windows of {WINDOW_EVENTS} events over {partitions} partition(s): {split} "
          f"record batches one by one with pauses (at least {least}), {whole} in one call each on a busy machine "
          f"(at least {least_whole})")
    assert least == least_whole == WINDOWS * partitions, "every window should reach every partition"
    assert split > least, "produced one by one with pauses, the windows still left whole: the test shows nothing"
    assert whole == least_whole

