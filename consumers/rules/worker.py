"""The rules worker: re-keys action events by tenant, then judges each tenant in exactly one place.

Actions arrive keyed by stream id, but most rules key by agent, trace, tool or model, which
span streams and therefore partitions. The worker first copies every action, unchanged, to
the repartition topic keyed by *tenant* (every rule key includes the tenant), then evaluates
that topic. Each tenant's events thus meet in one partition and one evaluator, each stream
keeping its order, and with watermarks taken over the source partitions (see
:class:`RulesWorker`) a tenant's incidents are the same whether 1 or N instances share the group.

>>> with RulesWorker(KafkaSettings(), load_evaluator(None)) as worker:
...     worker.run(stop_event)
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentaudit.consumers.engine import BaseEvaluator
from agentaudit.consumers.rules.evaluator import RuleEvaluator
from agentaudit.schemas import AvroCodec, Incident, body_hash, frame_body

__all__ = ["RulesWorker", "StateDirectory"]

_log = logging.getLogger(__name__)
REKEY_FETCH_BYTES = 32_768
SOURCE_TOPIC_HEADER = "x-agentaudit-source-topic"
SOURCE_PARTITION_HEADER = "x-agentaudit-source-partition"


class StateDirectory:
    """Evaluator snapshots with the offset they belong to, one file per group and partition.

    Written atomically (temp file + rename) after the offsets are committed; a worker that takes
    over a partition (restart or rebalance) restores the snapshot and resumes at its offset.
    Put it on storage every instance of the group can reach.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _file(self, group: str, topic: str, partition: int) -> Path:
        return self.path / group / f"{topic}-{partition}.json"

    def load(self, group: str, topic: str, partition: int) -> tuple[int, bytes] | None:
        try:
            doc = json.loads(self._file(group, topic, partition).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return int(doc["offset"]), doc["state"].encode()

    def save(self, group: str, topic: str, partition: int, offset: int, state: bytes) -> None:
        target = self._file(group, topic, partition)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_suffix(".tmp")
        temp.write_text(json.dumps({"offset": offset, "state": state.decode()}), encoding="utf-8")
        os.replace(temp, target)


class RulesWorker:
    """Two consumer loops in one process: re-key (actions -> repartition) and evaluate (repartition -> incidents).

    :param kafka: broker and topic names (``TopicNames.actions``, ``.repartition``, ``.incidents``).
    :param evaluator: the rule engine; its state belongs to this worker.
    :param group: consumer group of the evaluate loop; the re-key loop uses ``{group}-rekey``.
    :param batch_size: messages per batch for both loops.
    :param consumer_config: librdkafka overrides for both consumers (tests shorten the session timeout).
    :param state: where evaluator snapshots live (:class:`StateDirectory`); default none, so a
        partition that moves or a restart starts its windows empty.
    :param wrap: decorates each partition's evaluator, e.g. ``lambda ev: ControlPublisher(ev, kafka)`` so
        that simulate and enforce rules publish control commands, as ``agentaudit consume`` does;
        default none.

    Each assigned repartition partition has its own evaluator (a copy of ``evaluator``'s rules),
    so its state can follow the partition to whichever instance owns it next.

    Each copy carries its source topic and partition in headers, and each partition's evaluator
    is told every partition of the actions topic (``sources``): its watermark is the smallest,
    over those source partitions, of the largest event time each delivered, minus the allowed
    lateness. As long as each source partition is in event-time order (within the lateness),
    no event is ever late, so incidents do not depend on how the re-key loop interleaved the
    source partitions, hence not on how many instances share the group. A source partition that
    has sent nothing to a repartition partition holds its windows open (until :meth:`flush`).
    """

    def __init__(self, kafka: Any, evaluator: RuleEvaluator, *, group: str = "agentaudit-rules",
                 batch_size: int = 2000, consumer_config: dict[str, Any] | None = None,
                 state: StateDirectory | None = None,
                 wrap: Callable[[RuleEvaluator], BaseEvaluator] | None = None) -> None:
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
        self.group = group
        self.state = state
        self._wrap = wrap
        self._evaluators: dict[int, BaseEvaluator] = {}
        self._next_offsets: dict[int, int] = {}
        self._closing = False
        self._sources: tuple[str, ...] | None = None

    def _source_ids(self) -> tuple[str, ...]:
        """Every partition of the actions topic, as the evaluators name sources (``topic:partition``)."""
        if self._sources is None:
            from agentaudit.infra.kafka import KafkaAdmin

            topic = self.topics.actions
            self._sources = tuple(f"{topic}:{p}" for p in KafkaAdmin(self.kafka).partitions_for(topic))
        return self._sources

    def _fresh_evaluator(self) -> BaseEvaluator:
        template = self.evaluator
        fresh = RuleEvaluator(template.rule_set, owners=template.owners, lateness_us=template.lateness_us,
                              sources=self._source_ids())
        return fresh if self._wrap is None else self._wrap(fresh)

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        """Restore each partition's evaluator from its snapshot and resume at the snapshot's offset."""
        if self._closing:  # librdkafka may still serve an assignment while the consumer closes
            return
        for tp in partitions:
            evaluator = self._fresh_evaluator()
            saved = self.state.load(self.group, tp.topic, tp.partition) if self.state else None
            if saved is not None:
                offset, data = saved
                if json.loads(data).get("revision") == evaluator.revision:  # else: new rules, fresh state
                    evaluator.restore(data)
                    tp.offset = offset
            self._evaluators[tp.partition] = evaluator
        consumer.assign(partitions)

    def _revoked(self, _consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self._save(tp.partition)
            self._evaluators.pop(tp.partition, None)
            self._next_offsets.pop(tp.partition, None)

    def _save(self, partition: int) -> None:
        evaluator = self._evaluators.get(partition)
        offset = self._next_offsets.get(partition)
        if self.state is not None and evaluator is not None and offset is not None:
            self.state.save(self.group, self.topics.repartition, partition, offset, evaluator.snapshot())

    def subscribe(self) -> None:
        if not self._subscribed:
            self._source_ids()  # before any assignment callback needs it
            self._rekey.subscribe([self.topics.actions])
            self._judge.subscribe([self.topics.repartition], on_assign=self._assigned, on_revoke=self._revoked)
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
            headers = [(SOURCE_TOPIC_HEADER, message.topic()), (SOURCE_PARTITION_HEADER, str(message.partition()))]
            self._producer.produce(self.topics.repartition, message.value(), key=record["tenant"].encode(),
                                   headers=headers)
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
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for record, index in zip(records, indexes):
            message = messages[index]
            record["event_hash"] = body_hash(frame_body(values[index]))
            record["_partition"] = message.partition()
            record["_offset"] = message.offset()
            source = _source_of(message.headers())
            if source is not None:
                record["_source"] = source
            by_partition.setdefault(message.partition(), []).append(record)
        incidents: list[Incident] = []
        for partition, batch in sorted(by_partition.items()):
            evaluator = self._evaluators.get(partition)
            if evaluator is None:  # assigned without a callback (e.g. assign()); start empty
                evaluator = self._evaluators[partition] = self._fresh_evaluator()
            incidents.extend(evaluator.evaluate(batch))  # re-delivered events are dropped by event id
            self.evaluated += len(batch)
        for message in messages:
            self._next_offsets[message.partition()] = max(self._next_offsets.get(message.partition(), 0),
                                                          message.offset() + 1)
        self._publish(incidents)
        self._judge.commit(messages)
        return incidents

    def flush(self) -> list[Incident]:
        """Close every window of every held partition and publish what that decides: the end of a replay."""
        incidents = [i for _, ev in sorted(self._evaluators.items()) for i in ev.flush()]
        self._publish(incidents)
        return incidents

    def _publish(self, incidents: list[Incident]) -> None:
        for incident in incidents:
            self._producer.produce(self.topics.incidents, self._incidents.encode(incident.to_avro()),
                                   key=incident.incident_id.encode())
            self.incidents[incident.incident_id] = incident
        self._producer.flush()

    def save_state(self) -> None:
        """Snapshot every held partition's evaluator with its next offset (also done on revoke and close)."""
        for partition in list(self._evaluators):
            self._save(partition)

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
        self._closing = True
        self.save_state()
        self._rekey.close()
        self._judge.close()
        self._producer.close()

    def __enter__(self) -> RulesWorker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _source_of(headers: list[tuple[str, bytes]] | None) -> str | None:
    """``topic:partition`` of the action a repartition message copies, from its headers."""
    if not headers:
        return None
    found = {k: v for k, v in headers if k in (SOURCE_TOPIC_HEADER, SOURCE_PARTITION_HEADER)}
    topic, partition = found.get(SOURCE_TOPIC_HEADER), found.get(SOURCE_PARTITION_HEADER)
    if topic is None or partition is None:
        return None
    return f"{topic.decode()}:{partition.decode()}"
