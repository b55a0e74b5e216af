"""The simulator into a real broker: every event arrives decodable, keyed by its stream, chains intact."""

from __future__ import annotations

import threading
import time

import pytest

from agentaudit.infra.kafka import read_all
from agentaudit.producers.simulator import SimConfig, Simulator
from agentaudit.schemas import AvroCodec, body_hash, frame_body, verify_streams

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def test_two_thousand_events_arrive_decodable_keyed_and_chained(kafka_settings_factory):
    settings = kafka_settings_factory(partitions=3)
    sim = Simulator(SimConfig(seed=99, events=2_000, fault_rate=3))
    expected = [(key, value) for key, value, _ in sim.events()]
    stats = sim.run_to_kafka(settings)
    assert stats.events == 2_000
    messages = read_all(settings, settings.topics.actions, timeout=60, expected=2_000)
    assert len(messages) == 2_000
    assert sorted((m.key(), m.value()) for m in messages) == sorted(expected)
    records, _, failures = AvroCodec("action").decode_batch([m.value() for m in messages])
    assert not failures
    assert all(m.key() == r["stream_id"].encode() for m, r in zip(messages, records, strict=True))
    partitions = {}
    for m in messages:
        assert partitions.setdefault(m.key(), m.partition()) == m.partition()
    assert verify_streams([(r, body_hash(frame_body(m.value()))) for m, r in zip(messages, records, strict=True)]) == []


def test_rate_paces_and_stop_event_ends_a_live_wall_clock_run(kafka_settings_factory):
    settings = kafka_settings_factory(partitions=1)
    paced = Simulator(SimConfig(seed=1, events=400))
    began = time.monotonic()
    assert paced.run_to_kafka(settings, rate=500).events == 400
    assert time.monotonic() - began >= 0.7

    live = Simulator(SimConfig(seed=2, clock="wall"))
    stop = threading.Event()
    result = {}
    worker = threading.Thread(target=lambda: result.update(stats=live.run_to_kafka(settings, 300, stop)))
    started_us = time.time_ns() // 1000
    live_began = time.monotonic()
    worker.start()
    time.sleep(2.0)
    stop.set()
    worker.join(30)
    assert not worker.is_alive()
    live_events = result["stats"].events
    # ran, and never faster than the rate (plus one second's burst); a loaded machine may send fewer
    assert 0 < live_events <= 300 * (time.monotonic() - live_began) + 300, live_events
    messages = read_all(settings, settings.topics.actions, timeout=60, expected=400 + live_events)
    assert len(messages) == 400 + live_events
    records, _, failures = AvroCodec("action").decode_batch([m.value() for m in messages])
    assert not failures
    live_times = [r["event_time_us"] for r in records if r["stream_id"].startswith("sim-2/")]
    assert len(live_times) == live_events
    assert min(live_times) >= started_us - 1_000_000
    assert max(live_times) <= time.time_ns() // 1000 + 1_000_000
