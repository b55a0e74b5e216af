"""Feeding a simulated fleet into Kafka, paced by the wall clock (pacing never touches the data).

Pacing: ``rate > 0`` caps the run at ``rate`` events/s; with the wall clock each event also waits
until its own event time, so events arrive when they "happen". With ``clock="wall"`` and the
default ``sessions_per_agent``, the fleet gets enough concurrent sessions per agent to average
about ``rate`` events/s.
"""

from __future__ import annotations

import logging
import threading
import time

from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka import KafkaAdmin, KafkaProducer
from agentaudit.producers.simulator.engine import SimStats, Simulator, sessions_for_rate
from agentaudit.producers.simulator.exceptions import SimulatorError
from agentaudit.settings import KafkaSettings

__all__ = ["run_to_kafka"]

_log = logging.getLogger("agentaudit.producers.simulator")
_SLEEP_GRANULARITY_S = 0.005  # sleep only when this far ahead, so pacing costs little per event


def run_to_kafka(simulator: Simulator, kafka_settings: KafkaSettings, rate: float = 0.0,
                 stop_event: threading.Event | None = None, *, topic: str | None = None) -> SimStats:
    """Produce ``simulator``'s events to ``topic`` (default the actions topic), keyed by stream id.

    :param rate: events per second at most; 0 produces as fast as the broker takes them.
    :param stop_event: set it to stop early; the events produced so far are flushed.
    :param topic: default ``kafka_settings.topics.actions``.
    :returns: the run's stats (events counts what was handed to the producer and delivered).
    :raises SimulatorError: the broker refused or did not acknowledge the events.
    """
    stop = stop_event or threading.Event()
    target = topic or kafka_settings.topics.actions
    cfg = simulator.config
    if cfg.clock == "wall" and rate > 0 and "sessions_per_agent" not in cfg.model_fields_set:
        simulator._sessions = sessions_for_rate(cfg, rate)
        _log.info("wall clock at %.0f events/s: %d session(s) per agent", rate, simulator._sessions)
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None and len(failures) < 10:
            failures.append(err)

    wall = cfg.clock == "wall"
    try:
        KafkaAdmin(kafka_settings).ensure_topics([target])
        with KafkaProducer(kafka_settings, {"linger.ms": 20}) as producer:
            produce = producer.produce
            events = simulator.events()
            began = time.monotonic()
            anchor_us: int | None = None
            sent = 0
            try:
                for key, value, record in events:
                    due = sent / rate if rate > 0 else 0.0
                    if wall:  # each event waits for its own event time
                        if anchor_us is None:
                            anchor_us = record["event_time_us"] - int((time.monotonic() - began) * 1_000_000)
                        due = max(due, (record["event_time_us"] - anchor_us) / 1_000_000)
                    ahead = due - (time.monotonic() - began)
                    stopping = False
                    if ahead > _SLEEP_GRANULARITY_S:
                        producer.poll(0)
                        stopping = stop.wait(ahead)
                    else:
                        stopping = stop.is_set()
                    # the event in hand is sealed into its stream already: sent even when stopping, or its
                    # seq would be a gap before the tail checkpoint
                    produce(target, value, key=key, on_delivery=on_delivery)
                    sent += 1
                    if failures or stopping:
                        break
            finally:
                events.close()
            if not failures:  # a signing run covers every stream's tail before it stops, as the SDK's close()
                for key, value, _record in simulator.tail_events():
                    produce(target, value, key=key, on_delivery=on_delivery)
                    sent += 1
            simulator.stats.events = sent
    except KafkaError as exc:
        raise SimulatorError(f"producing simulated events to {target!r} failed: {exc}") from exc
    if failures:
        raise SimulatorError(f"the broker refused simulated events on {target!r}: {failures[0]}") from failures[0]
    return simulator.stats
