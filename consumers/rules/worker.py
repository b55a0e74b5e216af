"""The rules worker: re-keys action events by tenant, then judges each tenant in exactly one place.

Actions arrive keyed by stream id, but most rules key by agent, trace, tool or model, which
span streams and therefore partitions. The worker first copies every action, unchanged, to
the repartition topic keyed by *tenant* (every rule key includes the tenant), then evaluates
that topic. Each tenant's events thus meet in one partition and one evaluator, each stream
keeping its order, and with per-tenant watermarks a tenant's incidents are the same whether
1 or N instances share the group.

>>> with RulesWorker(KafkaSettings(), load_evaluator(None)) as worker:
...     worker.run(stop_event)
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from agentaudit.consumers.rules.evaluator import RuleEvaluator
from agentaudit.schemas import AvroCodec, Incident, body_hash, frame_body

__all__ = ["RulesWorker"]

_log = logging.getLogger(__name__)
REKEY_FETCH_BYTES = 32_768


class RulesWorker:
    """Two consumer loops in one process: re-key (actions -> repartition) and evaluate (repartition -> incidents).

    :param kafka: broker and topic names (``TopicNames.actions``, ``.repartition``, ``.incidents``).
    :param evaluator: the rule engine; its state belongs to this worker.
    :param group: consumer group of the evaluate loop; the re-key loop uses ``{group}-rekey``.
    :param batch_size: messages per batch for both loops.
    :param consumer_config: librdkafka overrides for both consumers (tests shorten the session timeout).

    Incidents are a function of each tenant's events as long as the event-time skew between
    that tenant's streams, as they reach the repartition topic, stays within the evaluator's
    allowed lateness; the re-key loop fetches little per partition to keep that skew small.
    """

    def __init__(self, kafka: Any, evaluator: RuleEvaluator, *, group: str = "agentaudit-rules",
                 batch_size: int = 2000, consumer_config: dict[str, Any] | None = None) -> None:
        from agentaudit.infra.kafka import KafkaConsumer, KafkaProducer

        self.kafka = kafka
        self.evaluator = evaluator
        self.batch_size = batch_size
        self.topics = kafka.topics
        # Small fetches make the re-key loop alternate between its partitions often, which keeps
        # the event-time skew between streams of one tenant small: incidents are independent of
        # the number of instances as long as that skew stays within the allowed lateness.
        rekey_config = {"max.partition.fetch.bytes": REKEY_FETCH_BYTES, **(consumer_config or {})}
        self._rekey = KafkaConsumer(kafka, f"{group}-rekey", rekey_config)
        self._judge = KafkaConsumer(kafka, group, consumer_config)
        self._producer = KafkaProducer(kafka)
        self._actions = AvroCodec("action")
        self._incidents = AvroCodec("incident")
        self.evaluated = 0
        self.incidents: dict[str, Incident] = {}  # the latest version of each incident this worker published
        self._subscribed = False

    def subscribe(self) -> None:
        if not self._subscribed:
            self._rekey.subscribe([self.topics.actions])
            self._judge.subscribe([self.topics.repartition])
            self._subscribed = True

    def assignment(self) -> tuple[list[Any], list[Any]]:
        """Partitions currently held by the re-key and the evaluate loop."""
        return self._rekey.assignment(), self._judge.assignment()

    def rekey_once(self, timeout: float = 0.2) -> int:
        """Copy one batch of actions to the repartition topic keyed by tenant; commit after delivery."""
        self.subscribe()
        messages = self._rekey.consume_batch(self.batch_size, timeout)
        if not messages:
            return 0
        records, indexes, failures = self._actions.decode_batch([m.value() for m in messages])
        for record, index in zip(records, indexes):
            message = messages[index]
            self._producer.produce(self.topics.repartition, message.value(), key=record["tenant"].encode())
        if failures:
            _log.info("rules.rekey_skipped count=%d (the sink dead-letters them)", len(failures))
        self._producer.flush()
        self._rekey.commit(messages)
        return len(messages)

    def judge_once(self, timeout: float = 0.2) -> list[Incident]:
        """Evaluate one batch of the repartition topic; publish incidents; commit."""
        self.subscribe()
        messages = self._judge.consume_batch(self.batch_size, timeout)
        if not messages:
            return []
        values = [m.value() for m in messages]
        records, indexes, _ = self._actions.decode_batch(values)
        batch = []  # a re-keyed batch delivered twice is dropped by the evaluator's event-id window
        for record, index in zip(records, indexes):
            message = messages[index]
            record["event_hash"] = body_hash(frame_body(values[index]))
            record["_partition"] = message.partition()
            record["_offset"] = message.offset()
            batch.append(record)
        incidents = self.evaluator.evaluate(batch)
        self.evaluated += len(batch)
        for incident in incidents:
            self._producer.produce(self.topics.incidents, self._incidents.encode(incident.to_avro()),
                                   key=incident.incident_id.encode())
            self.incidents[incident.incident_id] = incident
        self._producer.flush()
        self._judge.commit(messages)
        return incidents

    def run_once(self) -> int:
        """One re-key batch and one evaluate batch; returns the messages handled."""
        moved = self.rekey_once()
        return moved + len(self.judge_once())

    def run(self, stop_event: threading.Event) -> None:
        """Loop until ``stop_event`` is set."""
        while not stop_event.is_set():
            self.rekey_once()
            self.judge_once()

    def close(self) -> None:
        self._rekey.close()
        self._judge.close()
        self._producer.close()

    def __enter__(self) -> RulesWorker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
