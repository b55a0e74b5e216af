"""The sink: actions and lifecycle events from Kafka into ClickHouse, judged on the way.

Per batch: decode (bad messages to the dead-letter topic), insert per partition chunk with a
deduplication token, evaluate meanwhile, write incidents once the inserts are acknowledged, then
commit. Delivery is at least once; the steps, digests, ``--no-rules`` and failures:
``docs/sink.md``.

>>> sink = Sink(KafkaSettings(), StoreSettings(), SinkSettings(), BuiltinEvaluator())
>>> sink.run(stop_event)          # until stop_event is set
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agentaudit.consumers._columns import actions_table, incident_records_table, incidents_table, lifecycle_table
from agentaudit.consumers._metrics import SinkMetrics
from agentaudit.consumers.alignment import EventTimeAlignment, unread_partitions
from agentaudit.consumers.checkpoint import Checkpoint, Offsets
from agentaudit.consumers.digests import Digest, DigestChain, DigestSigner, digests_table
from agentaudit.consumers.dlq import DEFAULT_MAX_BYTES, DeadLetters, Quarantine
from agentaudit.consumers.envelope import Envelope
from agentaudit.consumers.exceptions import ConsumerError
from agentaudit.consumers.rule_state import PartitionEvaluators
from agentaudit.consumers.settings import SinkSettings
from agentaudit.control.admission import ControlAdmission, Refusal, check_lifecycle, warn_unauthenticated
from agentaudit.control.authority import Authority
from agentaudit.control.topic import decode_records, ensure_control_topic
from agentaudit.infra.clickhouse import Store, connect
from agentaudit.infra.exceptions import KafkaError, StoreError
from agentaudit.infra.kafka import KafkaAdmin, KafkaConsumer, KafkaProducer, Message, TopicPartition
from agentaudit.logs import get_logger
from agentaudit.rules.builtin import BuiltinEvaluator
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.rules.evaluator import DEFAULT_LATENESS_US, rule_error_incident
from agentaudit.rules.event_time import QuietTenants
from agentaudit.schemas import AvroCodec, Incident, frame_body
from agentaudit.schemas.checkpoints import SIG_ATTRIBUTE, check_checkpoint
from agentaudit.schemas.signing import KeyRing
from agentaudit.settings import KafkaSettings, StoreSettings

__all__ = ["AfterInsertCallback", "BatchResult", "Sink"]

_log = get_logger("agentaudit.consumers.sink")
_MAX_SUMMARY_CHARS = 4096
_QUIET_CHECK_S = 0.25  # how often quiet tenants are looked for (adds at most this to the idleness bound)

#: An insert ready to send: ``(table, Arrow table, deduplication token)``.
_Insert = tuple[str, Any, str]
#: One partition's decoded messages of a batch, in offset order.
_Chunk = list[Envelope]
#: Arrow rows of a chunk for one table.
_ToArrow = Callable[[Sequence[Envelope]], Any]

#: Event ids the sink remembers to mark a later copy with another body (``later_copy``).
FIRST_BODIES = 200_000

#: Test hook called after a batch is in the store and before its offsets are committed.
AfterInsertCallback = Callable[["BatchResult"], None]


@dataclass(slots=True)
class BatchResult:
    """What one :meth:`Sink.run_once` did."""

    consumed: int = 0
    inserted: int = 0
    lifecycle: int = 0
    dead_letters: int = 0
    incidents: int = 0
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    retried: bool = False


class Sink:
    """Consumes, stores, judges and commits, batch by batch.

    :param kafka: broker and topic names (``AGENTAUDIT_BOOTSTRAP_SERVERS``, ``AGENTAUDIT_TOPIC_*``).
    :param store: ClickHouse (``AGENTAUDIT_CLICKHOUSE_URL``, ``AGENTAUDIT_DATABASE``).
    :param sink: group, batching, retry and built-in rule settings (``AGENTAUDIT_SINK_*``).
    :param evaluator: judges each batch; default :class:`BuiltinEvaluator` from ``sink``'s settings.
        Unused when ``sink.inline_rules`` is false.
    :param on_after_insert: test hook run after the inserts and before the commit (crash tests).
    :param metrics: Prometheus metrics; default a fresh registry.
    :param authority: the operator keys and grants (``AGENTAUDIT_AUTHORITY_FILE``). Given, the sink stores
        only lifecycle events it authorizes, also reads the control topic, and writes an integrity incident
        (``integrity.unauthorized-lifecycle`` / ``integrity.unauthorized-command``) for each refused record.
        Default None: lifecycle events are stored unchecked (a warning says so once).
    :param keyring: the producer keys (``AGENTAUDIT_KEYS_FILE``) that stream checkpoints are verified with;
        each checkpoint row stores its verdict in ``actions.signature`` (view ``actions_verified``). Default
        the evaluator's key ring, if it has one; none: checkpoint rows are stored as ``unchecked``.
    :param partitions: inline rule state per actions partition (``consume --state-dir``): one evaluator per
        partition, snapshotted at every checkpoint and restored on assign by whichever sink of the group gets
        the partition. Default None: one evaluator (``evaluator``) judges every partition this sink holds.
    :param consumer: the Kafka consumer; default one made from ``kafka`` and ``sink`` when the sink starts.
    :param producer: the producer of dead letters, incidents and digests; default made from ``kafka``.
    :param store_client: the store client; default :func:`~agentaudit.infra.clickhouse.connect` of ``store``.
    :param admin: answers ``partitions_for`` and ``ensure_topics``; default a :class:`KafkaAdmin` of ``kafka``.
        Given clients are the caller's to configure; the sink still closes them.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        store: StoreSettings,
        sink: SinkSettings,
        evaluator: BaseEvaluator | None = None,
        *,
        on_after_insert: AfterInsertCallback | None = None,
        metrics: SinkMetrics | None = None,
        authority: Authority | None = None,
        keyring: KeyRing | None = None,
        partitions: PartitionEvaluators | None = None,
        consumer: KafkaConsumer | None = None,
        producer: KafkaProducer | None = None,
        store_client: Store | None = None,
        admin: KafkaAdmin | None = None,
    ) -> None:
        self.kafka_settings = kafka
        self.store_settings = store
        self.settings = sink
        self.partitions = partitions
        if evaluator is None:
            evaluator = partitions.factory() if partitions is not None else BuiltinEvaluator(
                forbidden_tools=sink.forbidden_tools, cost_threshold_usd=sink.cost_threshold_usd)
        self.evaluator = evaluator
        self._given_consumer = consumer
        self._given_producer = producer
        self._given_store = store_client
        self._admin = admin
        self.metrics = metrics if metrics is not None else SinkMetrics()
        self._on_after_insert = on_after_insert
        self.authority = authority
        self.keyring = keyring if keyring is not None else getattr(self.evaluator, "keyring", None)
        if authority is None and sink.consume_lifecycle:
            warn_unauthenticated("sink (lifecycle topic)")
        # Control records are judged here only to raise incidents for refused ones (agents judge for themselves).
        self._control_admission = ControlAdmission(authority) if authority is not None else None
        self._control_codec = AvroCodec("control", schema_registry_url=kafka.schema_registry_url,
                                        topic=kafka.topics.control)
        self._topics = kafka.topics
        self._actions_codec = AvroCodec("action", max_message_bytes=kafka.max_message_bytes,
                                        schema_registry_url=kafka.schema_registry_url, topic=kafka.topics.actions)
        self._lifecycle_codec = AvroCodec("incident_lifecycle", max_message_bytes=kafka.max_message_bytes,
                                          schema_registry_url=kafka.schema_registry_url, topic=kafka.topics.lifecycle)
        self._incident_codec = AvroCodec("incident", schema_registry_url=kafka.schema_registry_url,
                                         topic=kafka.topics.incidents)
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._store: Store | None = None
        self._inserter: ThreadPoolExecutor | None = None
        self._dead_letters: DeadLetters | None = None
        self._backoff = 0.0
        self._watermark_us = 0
        self._watermarks: dict[tuple[str, int], int] = {}  # per partition, with ``partitions``
        self._stop = threading.Event()
        self._assigned: frozenset[tuple[str, int]] = frozenset()
        self._warned_partial = False
        # Highest offset per partition fed to the evaluator, and incidents not yet safely written:
        # a retried batch re-writes these instead of judging the same events twice.
        self._evaluated: dict[tuple[str, int], int] = {}
        self._unwritten: dict[str, Incident] = {}
        # Store-side digests: the chain, this batch's digests, and those built per stored range until
        # the commit (a retried batch sends the same digests again instead of new ones).
        self._digests: DigestChain | None = None
        self._digests_batch: list[Digest] = []
        self._digests_built: dict[tuple[int, int, int], list[Digest]] = {}
        # "tenant\x1fevent_id" -> body hash of the copy this sink stored first, oldest first (later_copy).
        self._first_bodies: dict[str, str] = {}
        # Idleness of inline rules (agentaudit.rules.event_time): each tenant's last delivery, and the
        # next offset of each assigned actions partition, to know when every one is read to its end.
        self._quiet = QuietTenants(sink.idle_timeout_ms / 1000, time.monotonic())
        self._positions: dict[tuple[str, int], int | None] = {}
        self._quiet_checked = 0.0
        # One evaluator over several partitions: its watermark waits for the slowest unread partition, and
        # partitions far ahead of it in event time are paused (consumers/alignment.py). Per-partition
        # evaluators (``partitions``) each follow their own partition and need neither.
        lateness = getattr(self.evaluator, "lateness_us", DEFAULT_LATENESS_US)
        self._lateness_us = lateness if isinstance(lateness, int) else DEFAULT_LATENESS_US
        self._alignment = EventTimeAlignment(self._lateness_us) if sink.inline_rules and partitions is None else None
        self._batch_next: dict[tuple[str, int], int] = {}  # the next offsets once this batch is read
        self._positions_resolved = 0.0

    # -- lifecycle ------------------------------------------------------------------------

    def _open(self) -> KafkaConsumer:
        if self._consumer is None:
            s = self.settings
            config: dict[str, Any] = {
                "session.timeout.ms": s.session_timeout_ms,
                "heartbeat.interval.ms": s.heartbeat_interval_ms,
                "auto.offset.reset": s.auto_offset_reset,
                **s.consumer_config,
            }
            # ``is None``, never ``or``: a producer with nothing queued has len() 0 and is falsy.
            self._producer = self._given_producer if self._given_producer is not None else KafkaProducer(
                self.kafka_settings, {"message.max.bytes": max(s.dlq_max_bytes, DEFAULT_MAX_BYTES)})
            self._dead_letters = DeadLetters(self._producer, self._topics.dlq, max_bytes=s.dlq_max_bytes,
                                             max_attempts=s.dlq_max_attempts, metrics=self.metrics,
                                             quarantine=Quarantine(s.quarantine_path, s.quarantine_max_bytes))
            self._store = self._given_store if self._given_store is not None else connect(self.store_settings)
            if s.digests and self._digests is None:
                signer = DigestSigner.load_or_create(s.digest_key.expanduser())
                try:
                    self._kafka_admin().ensure_topics([s.digest_topic])
                except KafkaError as exc:  # e.g. no CREATE grant: the store copy still comes first
                    _log.warning("sink.digest_topic", topic=s.digest_topic, error=exc,
                                 hint="digests go to action_digests only until the topic exists and this "
                                      "principal may write it")
                self._digests = DigestChain(signer, self._topics.actions)
            # One thread, one batch in flight: inserts keep their order and never run concurrently.
            self._inserter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentaudit-sink-insert")
            consumer = self._given_consumer if self._given_consumer is not None else KafkaConsumer(
                self.kafka_settings, s.group, config)
            topics = [self._topics.actions] + ([self._topics.lifecycle] if s.consume_lifecycle else [])
            if not s.inline_rules:
                topics.append(self._topics.incidents)  # judged by `agentaudit rules run`, stored here
            if self._control_admission is not None:
                ensure_control_topic(self.kafka_settings)
                topics.append(self._topics.control)  # refused commands become integrity incidents
            consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
            self._consumer = consumer
            _log.info("sink.start", group=s.group, topics=",".join(topics),
                      rules="inline" if s.inline_rules else "none (incidents topic)",
                      store=self.store_settings.redacted_url(), database=self.store_settings.database)
        return self._consumer

    def _kafka_admin(self) -> KafkaAdmin:
        if self._admin is None:
            self._admin = KafkaAdmin(self.kafka_settings)
        return self._admin

    def close(self) -> None:
        """Leave the group without committing unfinished work, flush and release the clients."""
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        store, self._store = self._store, None
        inserter, self._inserter = self._inserter, None
        self._assigned = frozenset()
        if inserter is not None:
            inserter.shutdown(wait=True)  # run_once waits for its inserts; nothing is left in flight
        try:
            if consumer is not None:
                consumer.close()
        except KafkaError as exc:
            _log.warning("sink.close_failed", client="consumer", error=exc)
        try:
            if producer is not None:
                producer.close(timeout=10.0)
        except KafkaError as exc:
            _log.warning("sink.close_failed", client="producer", error=exc)
        if store is not None:
            store.close()
        if self.partitions is not None:
            self.partitions.close()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch (signal handlers call this)."""
        self._stop.set()

    def run(self, stop_event: threading.Event | None = None) -> None:
        """Process batches until ``stop_event`` (or :meth:`stop`) is set, then close.

        A batch interrupted by the stop is abandoned uncommitted and will be re-read.
        """
        stop = stop_event if stop_event is not None else self._stop
        try:
            while not stop.is_set() and not self._stop.is_set():
                self.run_once(stop)
        finally:
            self.close()
            _log.info("sink.stop", group=self.settings.group)

    @property
    def assignment(self) -> frozenset[tuple[str, int]]:
        """The ``(topic, partition)`` pairs this sink owns right now (empty between rebalances)."""
        return self._assigned

    def _on_assign(self, _consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        self._assigned = self._assigned | {(tp.topic, tp.partition) for tp in partitions}
        for tp in partitions:
            if tp.topic == self._topics.actions:
                key = (tp.topic, tp.partition)
                self._positions[key] = None  # read position unknown until it delivers
                if self.partitions is not None and self.settings.inline_rules:
                    # The partition's windows as the last owner checkpointed them; what they applied is not judged again.
                    applied = self.partitions.assign(tp.topic, tp.partition)
                    self._watermarks.pop(key, None)
                    if applied is None:
                        self._evaluated.pop(key, None)
                    else:
                        self._evaluated[key] = applied - 1
        _log.info("sink.assigned", partitions=_names(partitions))
        if self.settings.inline_rules:
            self._warn_if_partial()

    def _warn_if_partial(self) -> None:
        """Warn once when inline rules see only some of the actions partitions (a group of several sinks)."""
        topic = self._topics.actions
        owned = sum(1 for t, _ in self._assigned if t == topic)
        try:
            total = len(self._kafka_admin().partitions_for(topic))
        except KafkaError as exc:
            _log.debug("sink.partition_count", topic=topic, error=exc)
            return
        partial = 0 < owned < total
        if partial and not self._warned_partial:
            _log.warning(
                "sink.partial_assignment", group=self.settings.group, topic=topic, partitions=f"{owned}/{total}",
                hint="inline rules judge only this sink's partitions, so its incidents now depend on the group's "
                     "size. For incidents that do not, scale out as N x `agentaudit consume --no-rules` + M x "
                     "`agentaudit rules run`.")
        self._warned_partial = partial

    def _on_revoke(self, _consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        # Work is committed before the next poll, so nothing in flight belongs to these
        # partitions; a batch waiting out a back-off is dropped and re-read by the new owner.
        self._assigned = self._assigned - {(tp.topic, tp.partition) for tp in partitions}
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._positions.pop(key, None)
            if self._alignment is not None:
                self._alignment.forget(key)
            if self.partitions is not None and tp.topic == self._topics.actions:
                self.partitions.revoke(tp.topic, tp.partition)
                self._evaluated.pop(key, None)
                self._watermarks.pop(key, None)
        _log.info("sink.revoked", partitions=_names(partitions))

    # -- one batch --------------------------------------------------------------------------

    def run_once(self, stop_event: threading.Event | None = None) -> BatchResult:
        """Consume one batch, store and judge it, then commit; or back off and rewind on failure."""
        consumer = self._open()
        s = self.settings
        messages = consumer.consume_batch(s.batch_size, timeout=s.batch_timeout_ms / 1000)
        result = BatchResult()
        if not messages:
            self._judge_quiet(consumer)
            return result
        started = time.perf_counter()
        result.consumed = len(messages)
        self.metrics.events_in.inc(len(messages))
        self.metrics.batch_size.observe(len(messages))
        checkpoint = Checkpoint(lambda offsets: self._commit(consumer, offsets, result), flush=[self._confirm],
                                snapshot=self.partitions.snapshot if self.partitions is not None else None)
        self._batch_next = _next_offsets(messages)
        for (topic, partition), offset in self._batch_next.items():
            checkpoint.store_offset(topic, partition, offset)
        try:
            with _gc_paused():
                self._process(messages, result)  # inserts are acknowledged before incidents are written
            if self._on_after_insert is not None:
                self._on_after_insert(result)
            checkpoint.commit()  # dead letters and incidents confirmed -> rule state saved -> offsets committed
        except (StoreError, KafkaError, ConsumerError) as exc:
            self._retry_later(consumer, messages, exc, stop_event)
            result.retried = True
            return result
        if result.committed:
            offsets = result.committed
            for (topic, partition), offset in offsets.items():
                self.metrics.committed.labels(topic, str(partition)).set(offset)
                if (topic, partition) in self._positions:
                    self._positions[(topic, partition)] = offset
            for (topic, partition), high in consumer.high_watermarks(offsets).items():
                self.metrics.lag.labels(topic, str(partition)).set(max(high - offsets[(topic, partition)], 0))
        self._backoff = 0.0
        self.metrics.events_out.inc(result.inserted)
        self.metrics.lifecycle.inc(result.lifecycle)
        self.metrics.latency.observe(time.perf_counter() - started)
        self._judge_quiet(consumer)
        return result

    def _confirm(self) -> None:
        """The checkpoint's flush: digests sent, dead letters and incidents acknowledged by the broker."""
        self._publish_digests()
        assert self._dead_letters is not None  # noqa: S101 - narrows the Optional: set when the sink starts, before any batch
        self._dead_letters.confirm()
        self._unwritten.clear()
        self._settle_digests()

    def _commit(self, consumer: KafkaConsumer, offsets: Offsets, result: BatchResult) -> None:
        """The checkpoint's commit; a failure is logged, not retried: the rows are stored and the state saved."""
        try:
            consumer.commit([(t, p, o) for (t, p), o in offsets.items()])
        except KafkaError as exc:
            # A later commit covers them, or the new owner re-reads (deduplicated, and not judged twice).
            _log.warning("sink.commit_failed", group=self.settings.group, error=exc)
        else:
            result.committed = offsets

    def _judge_quiet(self, consumer: KafkaConsumer) -> None:
        """Close the pending decisions of quiet tenants (see :mod:`agentaudit.rules.event_time`).

        A tenant is quiet once it delivered nothing for the idle timeout while every assigned actions
        partition is read to its end; its watermark then advances with processing time. Checked at
        most every :data:`_QUIET_CHECK_S`; incidents a failed write leaves go out with the next batch.
        """
        now = time.monotonic()
        if not self.settings.inline_rules or not self._quiet.enabled or now - self._quiet_checked < _QUIET_CHECK_S:
            return
        self._quiet_checked = now
        quiet = self._quiet.quiet(now)
        if quiet is None or not self._read_to_end(consumer):
            return
        incidents: list[Incident] = []
        for evaluator in (self.partitions if self.partitions is not None else (self.evaluator,)):
            try:
                incidents.extend(evaluator.on_quiet(*quiet))
            except Exception as exc:  # noqa: BLE001 - a rule bug must not stop ingestion
                _log.exception("sink.rule_error", during="on_quiet", error=exc)
        for incident in incidents:
            self._unwritten[incident.incident_id] = incident
        if not self._unwritten:
            return
        try:
            self._write_incidents(list(self._unwritten.values()))
            assert self._dead_letters is not None  # noqa: S101 - narrows the Optional: set when the sink starts, before any batch
            self._dead_letters.confirm()
        except (StoreError, KafkaError, ConsumerError) as exc:
            _log.warning("sink.quiet_incidents_deferred", count=len(self._unwritten), error=exc)
            return
        _log.info("sink.quiet_incidents", count=len(self._unwritten))
        self._unwritten.clear()

    def _read_to_end(self, consumer: KafkaConsumer) -> bool:
        """Every assigned actions partition's next offset is at or past its high watermark (latest fetch)."""
        positions = self._positions
        if not positions or not self._resolve_positions(consumer):
            return False
        ends = consumer.high_watermarks(list(positions))
        return all(offset is not None and key in ends and offset >= ends[key] for key, offset in positions.items())

    def _resolve_positions(self, consumer: KafkaConsumer) -> bool:
        """Fill in the read position of partitions that delivered nothing since the assignment (their
        committed offset); False when the broker could not say."""
        positions = self._positions
        unknown = [key for key, offset in positions.items() if offset is None]
        if unknown:  # nothing delivered since the assignment: reading starts at the committed offset
            try:
                committed = consumer.committed(unknown, timeout=2.0)
            except KafkaError as exc:  # e.g. a rebalance under way: try again next time
                _log.info("sink.position_check_deferred", error=exc)
                return False
            ends = consumer.high_watermarks(unknown)
            for key, offset in committed.items():
                if offset is None:  # nothing committed: auto.offset.reset decides
                    offset = 0 if self.settings.auto_offset_reset == "earliest" else ends.get(key)
                if key in positions and offset is not None:
                    positions[key] = offset
        return True

    def _hold_and_align(self, latest: dict[tuple[str, int], int]) -> None:
        """Before judging a batch (``latest``: each partition's largest event time in it): note each partition's
        progress, hold the evaluator's watermark at the slowest unread partition (minus the lateness), and pause
        the partitions too far ahead of it."""
        alignment, consumer = self._alignment, self._consumer
        if alignment is None or consumer is None:
            return
        for key, t in latest.items():
            alignment.delivered(key, t)
        positions = self._positions
        now = time.monotonic()
        if None in positions.values() and now - self._positions_resolved >= _QUIET_CHECK_S:
            self._positions_resolved = now
            self._resolve_positions(consumer)
        batch_next = self._batch_next
        at = {key: batch_next.get(key, offset) for key, offset in positions.items()}
        unread = unread_partitions(at, consumer.high_watermarks(list(at)))
        self.evaluator.hold(alignment.ceiling(unread, self._lateness_us))
        pause, resume = alignment.plan(unread, now)
        try:
            if pause:
                consumer.pause(pause)
            if resume:
                consumer.resume(resume)
        except Exception as exc:  # noqa: BLE001 - a partition may have just been revoked: the next batch plans again
            _log.debug("sink.align_failed", error=exc)
            with contextlib.suppress(Exception):  # none may stay paused with nobody to resume it
                consumer.resume(list(positions))
            alignment.resumed_all()
        if pause:
            _log.info("sink.aligned", paused=",".join(f"{t}:{p}" for t, p in pause),
                      ahead_of_us=alignment.floor(unread))

    def _process(self, messages: list[Message], result: BatchResult) -> None:
        topics = self._topics
        actions = messages
        lifecycle: list[Message] = []
        published: list[Message] = []
        control: list[Message] = []
        if any(m.topic() != topics.actions for m in messages):
            actions = [m for m in messages if m.topic() == topics.actions]
            lifecycle = [m for m in messages if m.topic() == topics.lifecycle]
            published = [m for m in messages if m.topic() == topics.incidents]
            control = [m for m in messages if m.topic() == topics.control]
        refused: list[Refusal] = self._judge_control(control) if control else []
        records = self._decode(actions, self._actions_codec, result)
        records, inserts = self._insert_actions(records, result)
        if lifecycle:
            events = self._decode(lifecycle, self._lifecycle_codec, result)
            if self.authority is not None:
                events = self._authorized(lifecycle, events, refused)
            events, more = self._insert_chunks("incident_lifecycle", events, _lifecycle_arrow)
            inserts.extend(more)
            result.lifecycle = sum(len(chunk) for chunk in events)
        if published:
            found = self._decode(published, self._incident_codec, result)
            found, more = self._insert_chunks("incidents", found, _incidents_arrow)
            inserts.extend(more)
            result.incidents = sum(len(chunk) for chunk in found)
        sent = self._send(inserts)
        integrity = list({r.record_id: r.incident() for r in refused}.values())
        if not self.settings.inline_rules:
            if sent is not None:
                sent.result()
            if integrity:
                self._write_incidents(integrity)
            return
        try:
            incidents = self._evaluate(records, result)
        finally:
            if sent is not None:
                sent.result()  # raises the insert's StoreError: the batch is retried, nothing committed
        incidents = incidents + integrity
        if incidents:
            self._write_incidents(incidents)
            result.incidents = len(incidents)

    def _judge_control(self, messages: list[Message]) -> list[Refusal]:
        """Refused control records of this batch (their incidents are deterministic: a re-read is one incident)."""
        assert self._control_admission is not None  # noqa: S101 - narrows the Optional: only called when an authority is configured
        admission = self._control_admission
        for message, command in decode_records(self._control_codec, messages):
            admission.admit(command, message)
        return admission.take_refusals()

    def _authorized(self, messages: list[Message], chunks: list[_Chunk], refused: list[Refusal]) -> list[_Chunk]:
        """The lifecycle records the authority admits; the others are left out of the store and refused."""
        assert self.authority is not None  # noqa: S101 - narrows the Optional: only called when an authority is configured
        by_position = {(m.partition(), m.offset()): m for m in messages}
        kept: list[_Chunk] = []
        for chunk in chunks:
            good = []
            for envelope in chunk:
                refusal = check_lifecycle(self.authority, envelope.record,
                                          by_position[(envelope.partition, envelope.offset)])
                if refusal is None:
                    good.append(envelope)
                else:
                    refused.append(refusal)
            if good:
                kept.append(good)
        return kept

    def _decode(self, messages: list[Message], codec: AvroCodec, result: BatchResult) -> list[_Chunk]:
        """Decoded messages grouped into per-partition chunks (in offset order); failures to the DLQ."""
        values = [m.value() for m in messages]
        records, indexes, failures = codec.decode_batch(values)
        for index, error in failures:
            self._dead_letter(messages[index], error.reason, str(error))
        result.dead_letters += len(failures)
        hashed = codec is self._actions_codec
        chunks: dict[tuple[str, int], _Chunk] = {}
        for record, index in zip(records, indexes, strict=False):
            message = messages[index]
            topic, partition, value = message.topic(), message.partition(), values[index]
            if hashed:
                record["event_hash"] = hashlib.sha256(frame_body(value)).hexdigest()
            chunk = chunks.get((topic, partition))
            if chunk is None:
                chunks[(topic, partition)] = chunk = []
            # The value is a reference, so a record the store refuses is dead-lettered as sent.
            chunk.append(Envelope(topic, partition, message.offset(), message.timestamp()[1], message.key(),
                                  value, record))
        return list(chunks.values())

    def _dead_letter(self, message: Message, reason: str, error: str) -> None:
        assert self._dead_letters is not None  # noqa: S101 - narrows the Optional: set when the sink starts, before any batch
        self._dead_letters.send(message.key(), message.value(), reason=reason, error=error,
                                topic=message.topic(), partition=message.partition(), offset=message.offset())
        self.metrics.dlq.labels(reason).inc()
        _log.warning("sink.dead_letter", reason=reason, topic=message.topic(), partition=message.partition(),
                     offset=message.offset(), error=error)

    def _insert_actions(self, chunks: list[_Chunk], result: BatchResult) -> tuple[list[_Chunk], list[_Insert]]:
        self._mark_later_copies(chunks)
        self._mark_signatures(chunks)
        kept, inserts = self._insert_chunks("actions", chunks, _actions_arrow)
        result.inserted = sum(len(chunk) for chunk in kept)
        self._digests_batch = []
        if self._digests is not None and kept:
            digests = self._digests_batch = self._digest(kept)
            token = "digests:" + hashlib.sha256("".join(d.digest_id for d in digests).encode()).hexdigest()
            inserts.append(("action_digests", digests_table(digests), token))  # after the rows they cover
        return kept, inserts

    def _mark_signatures(self, chunks: list[_Chunk]) -> None:
        """Set ``signature`` on each checkpoint row: the key ring's verdict, or ``unchecked`` without one.

        One Ed25519 verify per checkpoint (every ~1000 events), remembered on the record so the integrity
        rules judging the same batch do not verify it again.
        """
        keyring = self.keyring
        for chunk in chunks:
            for envelope in chunk:
                r = envelope.record
                attributes = r["attributes"]
                if attributes and SIG_ATTRIBUTE in attributes:
                    check = check_checkpoint(keyring, r) if keyring is not None else None
                    r["signature"] = check.verdict.value if check is not None else "unchecked"

    def _mark_later_copies(self, chunks: list[_Chunk]) -> None:
        """Set ``later_copy`` on a copy of an event id whose body differs from the copy this sink stored first.

        Both are stored; readers skip marked rows (``actions_first``) with a plain filter, where finding
        them in the store would group the whole table. The rule engine raises the incident. This sink
        remembers the last ``FIRST_BODIES`` ids it stored; a copy it never saw beside the first (read by
        another sink, or older) stays unmarked and is listed by the ``action_conflicts`` view.
        """
        seen = self._first_bodies
        for chunk in chunks:
            for envelope in chunk:
                r = envelope.record
                key = f"{r['tenant']}\x1f{r['event_id']}"
                first = seen.get(key)
                if first is None:
                    seen[key] = r["event_hash"]
                elif first != r["event_hash"]:
                    r["later_copy"] = 1
        if len(seen) > FIRST_BODIES:
            for key in list(itertools.islice(seen, len(seen) - FIRST_BODIES)):
                del seen[key]

    def _digest(self, chunks: list[_Chunk]) -> list[Digest]:
        assert self._digests is not None  # noqa: S101 - narrows the Optional: only called when digests are on
        out: list[Digest] = []
        for chunk in chunks:
            key = (chunk[0].partition, chunk[0].offset, chunk[-1].offset)
            built = self._digests_built.get(key)
            if built is None:
                built = self._digests_built[key] = self._digests.build(
                    [e.record for e in chunk], partition=chunk[0].partition, offsets=[e.offset for e in chunk])
            out.extend(built)
        return out

    def _publish_digests(self) -> None:
        """Send the batch's digests (in ``action_digests`` by now) to the digest topic too.

        Not waited for: the store copy, written before the commit, is what ``verify --store`` checks;
        a broker that refuses the topic (no grant) must not stop ingestion. Refusals are logged.
        """
        if not self._digests_batch:
            return
        assert self._producer is not None  # noqa: S101 - narrows the Optional: set when the sink starts, before any batch
        topic = self.settings.digest_topic
        for digest in self._digests_batch:
            try:
                self._producer.produce(topic, digest.to_json(), key=f"{digest.topic}:{digest.partition}".encode(),
                                       on_delivery=_digest_delivered)
            except (KafkaError, BufferError) as exc:
                _log.warning("sink.digest_publish_failed", topic=topic, partition=digest.partition,
                             offsets=f"{digest.first_offset}-{digest.last_offset}", error=exc)

    def _settle_digests(self) -> None:
        if self._digests is not None and self._digests_batch:
            self._digests.advance(self._digests_batch)
        self._digests_batch = []
        self._digests_built.clear()

    def _insert_chunks(self, table: str, chunks: list[_Chunk], to_arrow: _ToArrow,
                       ) -> tuple[list[_Chunk], list[_Insert]]:
        """One insert per partition chunk, tokened by its offset range so a re-read deduplicates.

        Builds the blocks (dead-lettering records that do not fit) and returns them for :meth:`_send`.
        """
        kept: list[_Chunk] = []
        inserts: list[_Insert] = []
        for chunk in chunks:
            try:
                arrow = to_arrow(chunk)
            except (ValueError, TypeError, OverflowError, KeyError) as exc:
                # A record that fits Avro but not the table (e.g. depth > 65535): dead-letter it alone.
                chunk = self._drop_unstorable(chunk, to_arrow, exc)
                if not chunk:
                    continue
                arrow = to_arrow(chunk)
            first, last = chunk[0], chunk[-1]
            inserts.append((table, arrow, f"{first.topic}:{first.partition}:{first.offset}-{last.offset}"))
            kept.append(chunk)
        return kept, inserts

    def _send(self, inserts: list[_Insert]) -> Future[None] | None:
        """Start the batch's inserts on the insert thread; the caller waits for the future before committing."""
        if not inserts:
            return None
        assert self._inserter is not None and self._store is not None  # noqa: S101 - narrows the Optional: set when the sink starts, before any batch
        return self._inserter.submit(_insert_all, self._store, inserts)

    def _drop_unstorable(self, chunk: _Chunk, to_arrow: _ToArrow, exc: Exception) -> _Chunk:
        good = []
        for envelope in chunk:
            try:
                to_arrow([envelope])
            except (ValueError, TypeError, OverflowError, KeyError) as one:
                self._dead_letter_envelope(envelope, "unstorable", f"does not fit the store's columns: {one}")
            else:
                good.append(envelope)
        _log.warning("sink.unstorable", dropped=len(chunk) - len(good), error=exc)
        return good

    def _dead_letter_envelope(self, envelope: Envelope, reason: str, error: str) -> None:
        assert self._dead_letters is not None  # noqa: S101 - narrows the Optional: set when the sink starts, before any batch
        self._dead_letters.send(envelope.key, envelope.value, reason=reason, error=error,
                                topic=envelope.topic, partition=envelope.partition, offset=envelope.offset)
        self.metrics.dlq.labels(reason).inc()

    def _evaluate(self, chunks: list[_Chunk], result: BatchResult) -> list[Incident]:
        """Incidents to write for this batch: those of records never evaluated before, plus any
        from an earlier attempt that never got written (a retried batch is not judged twice)."""
        records: list[dict[str, Any]] = []
        per_partition: list[tuple[tuple[str, int], _Chunk]] = []
        evaluated = self._evaluated
        for chunk in chunks:
            key = (chunk[0].topic, chunk[0].partition)
            upto = evaluated.get(key, -1)
            fresh = chunk if chunk[0].offset > upto else [e for e in chunk if e.offset > upto]
            evaluated[key] = max(upto, chunk[-1].offset)
            if fresh:
                records.extend(e.record for e in fresh)
                per_partition.append((key, fresh))
        if not records:
            return list(self._unwritten.values())
        if self._quiet.enabled:
            self._quiet.delivered({r["tenant"] for r in records}, time.monotonic())
        started = time.perf_counter()
        incidents: list[Incident] = []
        if self.partitions is None:
            latest: dict[tuple[str, int], int] = {}
            for key, fresh in per_partition:
                t = max(e.record["event_time_us"] for e in fresh)
                if t > latest.get(key, t - 1):
                    latest[key] = t
            self._hold_and_align(latest)
            self._judge(self.evaluator, records, incidents, per_partition)
            watermark = max(latest.values())  # the batch's largest event time
            if watermark > self._watermark_us:
                self._watermark_us = watermark
                self._advance(self.evaluator, watermark, incidents)
        else:  # each partition's own evaluator and watermark: its state can move to another sink alone
            for key, fresh in per_partition:
                evaluator = self.partitions.get(*key)
                judged = [e.record for e in fresh]
                self._judge(evaluator, judged, incidents, [(key, fresh)])
                watermark = max(r["event_time_us"] for r in judged)
                if watermark > self._watermarks.get(key, 0):
                    self._watermarks[key] = watermark
                    self._advance(evaluator, watermark, incidents)
        self.metrics.rule_eval.observe(time.perf_counter() - started)
        for incident in incidents:
            self._unwritten[incident.incident_id] = incident
        return list(self._unwritten.values())

    def _judge(self, evaluator: BaseEvaluator, records: list[dict[str, Any]], out: list[Incident],
               chunks: list[tuple[tuple[str, int], _Chunk]]) -> None:
        """Judge ``records`` (the envelopes of ``chunks``, in order); an evaluator that raises is tried per record."""
        try:
            out.extend(evaluator.evaluate(records))
        except Exception as exc:  # noqa: BLE001 - a rule bug must not stop ingestion; isolate the records it trips on
            _log.exception("sink.rule_error", evaluator=type(evaluator).__name__, error=exc)
            for _, chunk in chunks:
                for envelope in chunk:
                    try:
                        out.extend(evaluator.evaluate([envelope.record]))
                    except Exception as one:  # noqa: BLE001 - stored already; judged by no rule: say so
                        out.append(self._rule_error(envelope, one))

    @staticmethod
    def _advance(evaluator: BaseEvaluator, watermark: int, out: list[Incident]) -> None:
        try:
            out.extend(evaluator.on_watermark(watermark))
        except Exception as exc:  # noqa: BLE001 - a rule bug must not stop ingestion; logged with its traceback
            _log.exception("sink.rule_error", during="on_watermark", watermark=watermark, error=exc)

    def _rule_error(self, envelope: Envelope, exc: Exception) -> Incident:
        """The rule_error incident of an evaluator that raised on ``envelope`` (the rule engine reports its own)."""
        record = envelope.record
        rule_id = getattr(exc, "rule_id", None) or type(self.evaluator).__name__
        error = f"{type(exc).__name__}: {exc}"
        _log.warning("sink.rule_error", rule=rule_id, topic=envelope.topic, partition=envelope.partition,
                     offset=envelope.offset, event_id=record["event_id"], error=error[:500])
        t = record["event_time_us"]
        return rule_error_incident(rule_id, record["tenant"], self.evaluator.revision, event_ids=[record["event_id"]],
                                   count=1, first_us=t, last_us=t, window_start_us=t - t % 3_600_000_000, error=error,
                                   event_id=record["event_id"], agent_id=record["agent_id"],
                                   trace_id=record["trace_id"])

    def _write_incidents(self, incidents: list[Incident]) -> None:
        assert self._store is not None and self._producer is not None  # noqa: S101 - narrows the Optional: set when the sink starts, before any batch
        # Any evaluator's summary quotes event fields; an incident must fit a Kafka message.
        incidents = [i if len(i.summary) <= _MAX_SUMMARY_CHARS else
                     i.model_copy(update={"summary": f"{i.summary[:_MAX_SUMMARY_CHARS]}... (cut, {len(i.summary)} "
                                                     "characters)"}) for i in incidents]
        # The token covers the content, so a retry of the same incidents is dropped and an
        # update (higher count) is not.
        digest = hashlib.sha256()
        for incident in incidents:
            digest.update(f"{incident.incident_id}:{incident.count}:{incident.last_seen_us}\n".encode())
        token = f"incidents:{digest.hexdigest()}"
        self._store.insert_arrow("incidents", incidents_table(incidents),
                                 settings={"insert_deduplication_token": token})
        codec, topic, producer = self._incident_codec, self._topics.incidents, self._producer
        assert self._dead_letters is not None  # noqa: S101 - narrows the Optional: set when the sink starts, before any batch
        for incident in incidents:
            self._dead_letters.track()
            producer.produce(topic, codec.encode(incident.to_avro()), key=incident.incident_id.encode(),
                             on_delivery=self._dead_letters.delivered)
            self.metrics.incidents.labels(incident.rule_id).inc()

    # -- failure --------------------------------------------------------------------------

    def _retry_later(self, consumer: KafkaConsumer, messages: list[Message], exc: Exception,
                     stop_event: threading.Event | None) -> None:
        """Pause, wait out the back-off while staying in the group, rewind to the batch start."""
        s = self.settings
        self._backoff = s.retry_initial_s if not self._backoff else min(self._backoff * 2, s.retry_max_s)
        self.metrics.retries.inc()
        if self._dead_letters is not None:
            self._dead_letters.reset()  # the retried batch sends its dead letters and incidents again
        firsts = _first_offsets(messages)
        _log.warning("sink.retry", group=s.group, batch=len(messages), backoff_s=round(self._backoff, 2),
                     error_type=type(exc).__name__, error=exc)
        assigned = consumer.assignment()
        try:
            consumer.pause(assigned)
        except Exception as pause_exc:  # noqa: BLE001 - a partition may have just been revoked; pausing is best effort
            _log.debug("sink.pause_failed", error=pause_exc)
        deadline = time.monotonic() + self._backoff
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (stop_event is not None and stop_event.is_set()) or self._stop.is_set():
                break
            # Polling while paused keeps the group membership alive and serves rebalances. A
            # partition assigned meanwhile is not paused: rewind what it hands out, never drop it.
            for message in consumer.consume_batch(1, timeout=min(left, 0.5)):
                firsts.setdefault((message.topic(), message.partition()), message.offset())
        owned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        for (topic, partition), offset in firsts.items():
            if (topic, partition) in owned:
                try:
                    consumer.seek(topic, partition, offset)
                except KafkaError as seek_exc:
                    _log.warning("sink.seek_failed", topic=topic, partition=partition, offset=offset, error=seek_exc)
        try:
            consumer.resume(consumer.assignment())
        except Exception as resume_exc:  # noqa: BLE001 - a partition may have just been revoked; resuming is best effort
            _log.debug("sink.resume_failed", error=resume_exc)
        if self._alignment is not None:
            self._alignment.resumed_all()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a batch is processed.

    A batch allocates tens of thousands of acyclic records (freed by reference counting), which
    triggers full collections that walk all rule state: measured at ~20% of the sink's time.
    Cycles made meanwhile are collected after the batch. A collector already disabled is left alone.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _digest_delivered(error: KafkaError | None, message: Any) -> None:
    if error is not None:
        _log.warning("sink.digest_publish_failed", topic=getattr(message, "topic", lambda: "?")(), error=error,
                     hint="the digest is in action_digests")


def _actions_arrow(chunk: Sequence[Envelope]) -> Any:
    return actions_table([e.record for e in chunk], partitions=[e.partition for e in chunk],
                         offsets=[e.offset for e in chunk])


def _lifecycle_arrow(chunk: Sequence[Envelope]) -> Any:
    return lifecycle_table([e.record for e in chunk])


def _incidents_arrow(chunk: Sequence[Envelope]) -> Any:
    return incident_records_table([e.record for e in chunk])


def _insert_all(store: Store, inserts: list[_Insert]) -> None:
    for table, arrow, token in inserts:
        store.insert_arrow(table, arrow, settings={"insert_deduplication_token": token})


def _next_offsets(messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    # A partition's messages arrive in offset order, so the last one seen is the highest.
    last = {(m.topic(), m.partition()): m.offset() for m in messages}
    return {key: offset + 1 for key, offset in last.items()}


def _first_offsets(messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic(), m.partition())
        if key not in offsets:
            offsets[key] = m.offset()
    return offsets


def _names(partitions: Sequence[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
