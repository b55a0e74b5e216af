"""The rules worker: re-keys action events by each rule's key class, then judges each key in exactly one place.

Actions arrive keyed by stream id, but most rules key by agent, trace, tool or model, which
span streams and therefore partitions. The worker first copies each action, unchanged, to
the repartition topic once per *key class* that needs it (a rule's key class: its trace, its
``by:`` fields, its stream...; see :mod:`agentaudit.rules.key_class`), keyed by the class, the
tenant and the class's field values, then evaluates that topic. The events one rule's state joins
and one of its incidents counts thus meet in one partition and one class evaluator, each stream
keeping its order, so one tenant is judged by as many workers as hold repartition partitions; with
watermarks taken over the source partitions (see :class:`RulesWorker`) the incidents are the same
whether 1 or N instances share the group. Behind the copies the re-key stage writes watermark
markers (a source's progress, or that it is idle), so a quiet source partition does not hold
every window open. Design: ``docs/rule-keys.md``.

>>> with RulesWorker(KafkaSettings(), load_evaluator(None)) as worker:
...     worker.run(stop_event)
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from agentaudit.consumers.checkpoint import Checkpoint, Offsets
from agentaudit.infra.exceptions import KafkaError
from agentaudit.logs import get_logger
from agentaudit.rules._idleness import PROGRESS, SourceIdleness
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.rules.evaluator import RuleEvaluator
from agentaudit.rules.key_class import KeyRouter
from agentaudit.rules.keyed import KEY_CLASS_FIELD, KeyedEvaluator
from agentaudit.rules.settings import DEFAULT_IDLE_TIMEOUT_MS
from agentaudit.schemas import AvroCodec, Incident, body_hash, frame_body

__all__ = ["DEFAULT_IDLE_TIMEOUT_MS", "RulesWorker", "StateDirectory"]

_log = get_logger(__name__)
REKEY_FETCH_BYTES = 32_768
SOURCE_TOPIC_HEADER = "x-agentaudit-source-topic"
SOURCE_PARTITION_HEADER = "x-agentaudit-source-partition"
MARKER_HEADER = "x-agentaudit-marker"  # on a watermark marker: "progress" or "idle"; its value is empty
EVENT_TIME_HEADER = "x-agentaudit-event-time-us"  # on a marker: the source's largest event time so far
QUIET_HEADER = "x-agentaudit-quiet-us"  # on an idle marker: processing time the source has delivered nothing
KEY_CLASS_HEADER = "x-agentaudit-key-class"  # on a copy: the key class it was routed for
COPIES_HEADER = "x-agentaudit-copies"  # on a copy: how many key classes its event was copied to


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
    """Two consumer loops in one process: re-key (actions -> repartition, per key class) and evaluate
    (repartition -> incidents).

    :param kafka: broker and topic names (``TopicNames.actions``, ``.repartition``, ``.incidents``).
    :param evaluator: the rule engine; its state belongs to this worker.
    :param group: consumer group of the evaluate loop; the re-key loop uses ``{group}-rekey``.
    :param batch_size: actions per re-key batch; a judge batch takes up to this many times the number of key
        classes, the most copies a re-key batch can write.
    :param consumer_config: librdkafka overrides for both consumers (tests shorten the session timeout).
    :param state: where evaluator snapshots live (:class:`StateDirectory`); default none, so a
        partition that moves or a restart starts its windows empty.
    :param wrap: decorates each partition's evaluator, e.g. ``lambda ev: ControlPublisher(ev, kafka)`` so
        that simulate and enforce rules publish control commands, as ``agentaudit consume`` does;
        default none.
    :param idle_timeout_ms: processing time after which a source partition that delivers nothing,
        and has been read to its end, is idle (``AGENTAUDIT_RULES_IDLE_TIMEOUT_MS``, ``rules run
        --idle-timeout-ms``); default 5000. ``0``: no markers, every window waits for every source.
    :param snapshot_interval_s: with ``state``, the least time between two checkpoints that snapshot the
        evaluators (each snapshot carries the offset it belongs to, so an older one is resumed by re-reading
        from there); default 5. ``0``: every checkpoint. Revoke and :meth:`close` always snapshot.
    :param rekey_consumer: consumer of the re-key loop; default a ``KafkaConsumer`` of ``{group}-rekey``.
    :param judge_consumer: consumer of the evaluate loop; default a ``KafkaConsumer`` of ``group``.
    :param producer: writes copies, markers and incidents; default a ``KafkaProducer`` of ``kafka``.
    :param admin: answers ``partitions_for``; default a ``KafkaAdmin`` of ``kafka``.

    The re-key loop copies each action once per key class that needs it (:class:`KeyRouter`: a
    class of predicates, windowed aggregates and absences only takes the events one of their
    conditions matches; a class with a chain, sequence or integrity rule takes every event), keyed by
    class, tenant and the class's field values, with the class and the number of copies in headers.
    Each assigned repartition partition has its own :class:`KeyedEvaluator` (a class evaluator per
    key class of ``evaluator``'s rules), so its state can follow the partition to whichever instance
    owns it next. ``evaluated`` counts source events: each copy judged adds 1/copies.

    Each copy carries its source topic and partition in headers, and each partition's evaluator
    is told every partition of the actions topic (``sources``): its watermark is the smallest,
    over those source partitions, of the largest event time each delivered, minus the allowed
    lateness. As long as each source partition is in event-time order (within the lateness),
    no event is ever late, so incidents do not depend on how the re-key loop interleaved the
    source partitions, hence not on how many instances share the group.

    Watermark markers keep that minimum moving. The re-key loop writes them to every
    repartition partition, behind the copies of the source's events (empty value, the source
    headers and :data:`MARKER_HEADER`): *progress* carries the largest event time the source has
    delivered (when it grew, at most about once a second), so a source whose tenants all live in
    other partitions still advances this one; *idle* says the source has delivered nothing for
    ``idle_timeout_ms`` while read to its end (next offset >= the high watermark of the latest
    fetch), so the judges leave it out of the minimum until it delivers again (when all are
    idle, the largest maximum holds, advanced by the processing time each has been quiet: idle
    markers repeat about once a second with that time, so after the last event every decision is
    made within lateness + ``idle_timeout_ms``; see :mod:`agentaudit.rules.event_time`). A partition with
    unread records is never idle, so a
    backlog replay decides the same incidents as without markers, only sooner; an idle source
    that later delivers events older than the watermark (minus the lateness) finds their windows
    closed, as in any stream processor with idleness.

    Stopping (:meth:`close`, e.g. on SIGINT/SIGTERM in ``agentaudit rules run``) commits what was
    handled and snapshots every partition's state, but fires no window the watermark has not
    closed: with a :class:`StateDirectory` a restart resumes those windows; :meth:`flush` closes
    them all, for the end of a finite replay only.
    """

    def __init__(self, kafka: Any, evaluator: RuleEvaluator, *, group: str = "agentaudit-rules",
                 batch_size: int = 2000, consumer_config: dict[str, Any] | None = None,
                 state: StateDirectory | None = None,
                 wrap: Callable[[RuleEvaluator], BaseEvaluator] | None = None,
                 idle_timeout_ms: int = DEFAULT_IDLE_TIMEOUT_MS, snapshot_interval_s: float = 5.0,
                 rekey_consumer: Any = None, judge_consumer: Any = None, producer: Any = None,
                 admin: Any = None) -> None:
        from agentaudit.infra.kafka import CONSUMER_DEFAULTS, KafkaConsumer, KafkaProducer

        self.kafka = kafka
        self.evaluator = evaluator
        self.batch_size = batch_size
        self.topics = kafka.topics
        # Small fetches make the re-key loop alternate between its partitions often. The event-time skew
        # still grows where partitions carry different numbers of events per hour (docs/event-time.md); the
        # judges' watermark over sources keeps the verdicts independent of it, and their open windows grow with it.
        rekey_config = {"max.partition.fetch.bytes": REKEY_FETCH_BYTES, **(consumer_config or {})}
        self._reset_to_start = str({**CONSUMER_DEFAULTS, **rekey_config}.get("auto.offset.reset")) in (
            "earliest", "beginning", "smallest")
        # ``is None``, never ``or``: a given producer with nothing queued has len() 0 and is falsy.
        self._rekey = rekey_consumer if rekey_consumer is not None else KafkaConsumer(
            kafka, f"{group}-rekey", rekey_config)
        self._judge = judge_consumer if judge_consumer is not None else KafkaConsumer(kafka, group, consumer_config)
        # A re-keyed action is the value as consumed plus a key and two headers: a valid action just
        # under max_message_bytes must still fit (at the default limit it was refused, halting the worker).
        self._producer = producer if producer is not None else KafkaProducer(
            kafka, {"message.max.bytes": kafka.max_message_bytes + 65_536})
        self._admin = admin
        self.snapshot_interval_s = snapshot_interval_s
        self._snapshotted = time.monotonic()
        self._actions = AvroCodec("action")
        self._incidents = AvroCodec("incident")
        self.evaluated: Fraction = Fraction(0)  # source events judged; each copy judged counts 1/copies
        self.received = 0  # copies (not markers) the evaluate loop has read
        self.copied = 0  # copies the re-key loop has written
        self.router = KeyRouter(evaluator.rule_set)
        self.incidents: dict[str, Incident] = {}  # the latest version of each incident this worker published
        self._subscribed = False
        self.group = group
        self.state = state
        self._wrap = wrap
        self._evaluators: dict[int, BaseEvaluator] = {}
        self._next_offsets: dict[int, int] = {}
        self._closing = False
        self._sources: tuple[str, ...] | None = None
        self._targets: tuple[int, ...] = ()  # repartition partitions, each of which gets every marker
        self.idleness = SourceIdleness(idle_timeout_ms / 1000)

    def _source_ids(self) -> tuple[str, ...]:
        """Every partition of the actions topic, as the evaluators name sources (``topic:partition``)."""
        if self._sources is None:
            topic = self.topics.actions
            self._sources = tuple(f"{topic}:{p}" for p in self._kafka_admin().partitions_for(topic))
        return self._sources

    def _kafka_admin(self) -> Any:
        if self._admin is None:
            from agentaudit.infra.kafka import KafkaAdmin

            self._admin = KafkaAdmin(self.kafka)
        return self._admin

    def _fresh_evaluator(self) -> BaseEvaluator:
        """A :class:`KeyedEvaluator` of the worker's rules over every source partition, wrapped."""
        template = self.evaluator
        fresh = KeyedEvaluator(template.rule_set, owners=template.owners, lateness_us=template.lateness_us,
                               sources=self._source_ids(), keyring=getattr(template, "keyring", None))
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

    def _rekey_assigned(self, _consumer: Any, partitions: list[Any]) -> None:
        """Track each new source, and tell every judge it is active again before any of its records.

        A judge restored from a snapshot (a restart, or a source moving between workers) may hold the
        source as idle; records written to it since would otherwise be judged against a watermark
        that left the source out, i.e. as late, and the same log would decide other incidents.
        """
        now = time.monotonic()
        for tp in partitions:
            self.idleness.assign(f"{tp.topic}:{tp.partition}", now)
        if self.idleness.enabled and partitions and self._targets:
            for tp in partitions:
                headers = [(SOURCE_TOPIC_HEADER, tp.topic), (SOURCE_PARTITION_HEADER, str(tp.partition)),
                           (MARKER_HEADER, PROGRESS)]
                for target in self._targets:
                    self._producer.produce(self.topics.repartition, None, headers=headers, partition=target)
            self._producer.flush()

    def _rekey_revoked(self, _consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self.idleness.revoke(f"{tp.topic}:{tp.partition}")

    def subscribe(self) -> None:
        if not self._subscribed:
            self._source_ids()  # before any assignment callback needs it
            self._targets = tuple(self._kafka_admin().partitions_for(self.topics.repartition))
            self._rekey.subscribe([self.topics.actions], on_assign=self._rekey_assigned,
                                  on_revoke=self._rekey_revoked)
            self._judge.subscribe([self.topics.repartition], on_assign=self._assigned, on_revoke=self._revoked)
            self._subscribed = True

    def assignment(self) -> tuple[list[Any], list[Any]]:
        """Partitions currently held by the re-key and the evaluate loop."""
        return self._rekey.assignment(), self._judge.assignment()

    def rekey_once(self, timeout: float = 0.2) -> int:
        """Copy one batch of actions to the repartition topic, once per key class, then the markers due; commit."""
        self.subscribe()
        messages = self._rekey.consume_batch(self.batch_size, timeout)
        now = time.monotonic()
        idleness = self.idleness
        if messages:
            records, indexes, failures = self._actions.decode_batch([m.value() for m in messages])
            times: list[int | None] = [None] * len(messages)
            route = self.router.route
            produce = self._producer.produce
            repartition = self.topics.repartition
            for record, index in zip(records, indexes, strict=False):
                message = messages[index]
                times[index] = record["event_time_us"]
                routes = route(record)
                source = [(SOURCE_TOPIC_HEADER, message.topic()), (SOURCE_PARTITION_HEADER, str(message.partition())),
                          (COPIES_HEADER, str(len(routes)))]
                for name, key in routes:
                    produce(repartition, message.value(), key=key, headers=[*source, (KEY_CLASS_HEADER, name)])
                self.copied += len(routes)
            if failures:
                _log.info("rules.rekey_skipped", count=len(failures), hint="the sink dead-letters them")
            if idleness.enabled:
                for message, t in zip(messages, times, strict=False):
                    idleness.delivered(f"{message.topic()}:{message.partition()}", message.offset() + 1, t, now)
        if idleness.enabled:
            self._send_markers(now)
        if messages:
            checkpoint = Checkpoint(self._commit_rekey, flush=[self._flush])  # copies acknowledged, then commit
            for (topic, partition), offset in _next_offsets(messages).items():
                checkpoint.store_offset(topic, partition, offset)
            checkpoint.commit()
        return len(messages)

    def _commit_rekey(self, offsets: Offsets) -> None:
        self._rekey.commit([(t, p, o) for (t, p), o in offsets.items()])

    def _commit_judge(self, offsets: Offsets) -> None:
        self._judge.commit([(t, p, o) for (t, p), o in offsets.items()])

    def _flush(self) -> None:
        remaining = self._producer.flush()
        if remaining:  # kept as before: logged, not retried (the commit still follows)
            _log.warning("rules.flush_incomplete", remaining=remaining)

    def _snapshot_due(self, offsets: Offsets) -> None:
        """The checkpoint's snapshot: every held partition's state with its next offset, when the interval is up."""
        now = time.monotonic()
        if self.state is None or now - self._snapshotted < self.snapshot_interval_s:
            return
        self._snapshotted = now
        for _topic, partition in offsets:
            self._save(partition)

    def _send_markers(self, now: float) -> None:
        """Progress and idle markers due (see :class:`SourceIdleness`), to every repartition partition."""
        idleness = self.idleness
        quiet = idleness.unpositioned(now)
        if quiet:  # nothing delivered since the assignment: the group's committed offset is where reading starts
            topic = self.topics.actions
            try:
                committed = self._rekey.committed([(topic, int(s.rsplit(":", 1)[1])) for s in quiet], timeout=2.0)
            except KafkaError as exc:  # e.g. a rebalance under way: try again next time
                _log.info("rules.idle_check_deferred", error=exc)
                committed = {}
            ends = self._rekey.high_watermarks(committed)
            for (t, p), offset in committed.items():
                if offset is None:  # nothing committed: auto.offset.reset decides
                    offset = 0 if self._reset_to_start else ends.get((t, p))
                if offset is not None:
                    idleness.set_position(f"{t}:{p}", offset)
        assigned = self._rekey.assignment()
        ends = {f"{t}:{p}": end for (t, p), end in self._rekey.high_watermarks(assigned).items()}
        markers = idleness.markers(now, ends)
        for source, kind, event_time, quiet in markers:
            topic, partition = source.rsplit(":", 1)
            headers = [(SOURCE_TOPIC_HEADER, topic), (SOURCE_PARTITION_HEADER, partition), (MARKER_HEADER, kind)]
            if event_time is not None:
                headers.append((EVENT_TIME_HEADER, str(event_time)))
            if quiet is not None:
                headers.append((QUIET_HEADER, str(quiet)))
            for target in self._targets:
                self._producer.produce(self.topics.repartition, None, headers=headers, partition=target)
            repeated = quiet is not None and quiet >= (idleness.idle_timeout_s + idleness.progress_interval_s) * 1e6
            log = _log.info if kind == "idle" and not repeated else _log.debug
            log("rules.source_" + kind, source=source, event_time_us=event_time, quiet_us=quiet)
        if markers:
            self._producer.flush()

    def judge_once(self, timeout: float = 0.2) -> list[Incident]:
        """Evaluate one batch of the repartition topic; publish incidents; commit."""
        self.subscribe()
        # Up to every copy of a re-key batch: a judge batch of batch_size would fall behind the copies, and
        # run() would then wait out the re-key loop's poll timeout once per judge batch.
        messages = self._judge.consume_batch(self.batch_size * len(self.router.classes), timeout)
        if not messages:
            return []
        # Markers keep their place among the records: each evaluator applies them in log order.
        slots: list[dict[str, Any] | None] = [None] * len(messages)
        data: list[int] = []
        sources: list[str | None] = []
        classes: list[tuple[str, int] | None] = []
        for i, message in enumerate(messages):
            try:
                source, marker, routed = _read_headers(message.headers())
            except ValueError as exc:  # UnicodeDecodeError too: not what the re-key loop writes; skip, judge the rest
                _log.warning("rules.repartition_malformed", partition=message.partition(), offset=message.offset(),
                             error=str(exc))
                sources.append(None)
                classes.append(None)
                continue
            sources.append(source)
            classes.append(routed)
            if marker is None:
                data.append(i)
            elif source is not None:
                slots[i] = marker
                marker["_source"] = source
        # An event's copies to this consumer's partitions often share a batch: decode and hash each body once,
        # and give every copy its own shallow record (the class and source fields differ).
        values = [messages[i].value() for i in data]
        unique: dict[bytes, int] = {}
        which = [unique.setdefault(v, len(unique)) for v in values]
        bodies = list(unique)
        decoded, found, _ = self._actions.decode_batch(bodies)
        by_body: dict[int, dict[str, Any]] = {}
        for record, index in zip(decoded, found, strict=False):
            record["event_hash"] = body_hash(frame_body(bodies[index]))
            by_body[index] = record
        records: list[dict[str, Any]] = []
        shares: Counter[int] = Counter()
        for index, body in enumerate(which):
            base = by_body.get(body)
            if base is None:  # undecodable: the sink dead-letters it
                continue
            record = dict(base)
            records.append(record)
            i = data[index]
            if sources[i] is not None:
                record["_source"] = sources[i]
            routed = classes[i]
            if routed is not None:
                record[KEY_CLASS_FIELD] = routed[0]
            shares[routed[1] if routed is not None else 1] += 1
            slots[i] = record
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for message, slot in zip(messages, slots, strict=False):
            if slot is not None:
                by_partition.setdefault(message.partition(), []).append(slot)
        incidents: list[Incident] = []
        for partition, batch in sorted(by_partition.items()):
            evaluator = self._evaluators.get(partition)
            if evaluator is None:  # assigned without a callback (e.g. assign()); start empty
                evaluator = self._evaluators[partition] = self._fresh_evaluator()
            incidents.extend(evaluator.evaluate(batch))  # re-delivered events are dropped by event id
        self.received += len(records)
        self.evaluated += sum((Fraction(n, copies) for copies, n in shares.items()), Fraction(0))
        checkpoint = Checkpoint(self._commit_judge, flush=[self._flush], snapshot=self._snapshot_due)
        for (topic, partition), offset in _next_offsets(messages).items():
            self._next_offsets[partition] = max(self._next_offsets.get(partition, 0), offset)
            checkpoint.store_offset(topic, partition, offset)
        self._publish(incidents)
        checkpoint.commit()  # incidents acknowledged -> state snapshotted (when due) -> offsets committed
        return incidents

    def flush(self) -> list[Incident]:
        """Close every window of every held partition and publish what that decides: the end of a replay."""
        incidents = [i for _, ev in sorted(self._evaluators.items()) for i in ev.flush()]
        self._publish(incidents)
        self._flush()
        return incidents

    def _publish(self, incidents: list[Incident]) -> None:
        for incident in incidents:
            self._producer.produce(self.topics.incidents, self._incidents.encode(incident.to_avro()),
                                   key=incident.incident_id.encode())
            self.incidents[incident.incident_id] = incident

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


def _next_offsets(messages: list[Any]) -> Offsets:
    # A partition's messages arrive in offset order, so the last one seen is the highest.
    return {(m.topic(), m.partition()): m.offset() + 1 for m in messages}


def _read_headers(headers: list[tuple[str, bytes]] | None
                  ) -> tuple[str | None, dict[str, Any] | None, tuple[str, int] | None]:
    """``topic:partition`` of the source a repartition message comes from, its marker record if it is one,
    and for a copy its key class and how many copies its event has (None: a copy from before key classes)."""
    if not headers:
        return None, None, None
    found = dict(headers)
    topic, partition = found.get(SOURCE_TOPIC_HEADER), found.get(SOURCE_PARTITION_HEADER)
    source = f"{topic.decode()}:{partition.decode()}" if topic is not None and partition is not None else None
    kind = found.get(MARKER_HEADER)
    if kind is None:
        name, copies = found.get(KEY_CLASS_HEADER), found.get(COPIES_HEADER)
        routed = (name.decode(), max(int(copies), 1)) if name is not None and copies is not None else None
        return source, None, routed
    marker: dict[str, Any] = {"_marker": kind.decode()}
    event_time = found.get(EVENT_TIME_HEADER)
    if event_time is not None:
        marker["event_time_us"] = int(event_time)
    quiet = found.get(QUIET_HEADER)
    if quiet is not None:
        marker["quiet_us"] = int(quiet)
    return source, marker, None
