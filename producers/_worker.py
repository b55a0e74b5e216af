"""The background thread: seal events in order, produce them, spill to the spool and replay it.

Delivery keeps per-stream order and sends each event once, through every path:

- **windows**: events are handed to Kafka a window at a time, in one ``produce_batch`` call (at most
  ``WINDOW_EVENTS`` events and ``WINDOW_BYTES`` bytes of keys and values, so one request per
  partition), and the next window starts only when every event of this one has its delivery report.
  librdkafka still queues the call's messages one by one, so a window can leave in two requests if this
  thread is descheduled mid-call for longer than ``linger.ms``; 20 ms makes that rare (see
  :data:`SDK_PRODUCER_CONFIG`). The producer never retries by itself (``retries=0``),
  so an event is never written twice behind the SDK's back;
- **read-back**: when a report says a send failed, the event may still have been written (the broker
  died before answering). Before sending anything else, the worker reads the partition back from
  the last confirmed offset and re-sends, in order, only the events that are not there;
- **spooling**: when the broker looks away (a window unanswered for ``spill_after_ms``, or a failed
  read-back), every queued and new event goes to the on-disk spool; windows are then read from the
  spool, and a record leaves it only once confirmed. When the spool is empty, sending is direct again.

The read-back starts at the last offset this client saw confirmed in that partition (from the
beginning of the partition when none was confirmed yet) and gives up after 10 s, re-sending then.

Idempotent producing would make the read-back unnecessary, but tansu (the embedded broker)
acknowledges some re-sent batches after a restart without storing them; the read-back works on
any broker.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka import KafkaAdmin, KafkaConsumer, KafkaProducer
from agentaudit.logs import get_logger
from agentaudit.producers._checkpoints import CheckpointSchedule
from agentaudit.producers._queue import EventQueue, QueueEntry
from agentaudit.producers._spool import Position, Spool
from agentaudit.producers.redaction import Redactor, cap, redact_fields
from agentaudit.producers.settings import SdkSettings
from agentaudit.schemas import ACTION_DEFAULTS, AvroCodec, SigningKey, StreamChain
from agentaudit.schemas.checkpoints import CHECKPOINT_NAME
from agentaudit.settings import KafkaSettings

__all__ = ["DROPPED_ATTRIBUTE", "DROP_LOG_INTERVAL_S", "SDK_IDEMPOTENT_CONFIG", "SDK_PRODUCER_CONFIG", "WINDOW_BYTES",
           "WINDOW_EVENTS", "Worker"]

_log = get_logger("agentaudit.producers")

#: librdkafka settings of the SDK's producer: no retries of its own (the worker decides, after a
#: read-back), one request in flight per broker, and a bounded wait for an absent broker.
SDK_PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": False,
    "acks": "all",
    "retries": 0,
    "max.in.flight.requests.per.connection": 1,
    "message.timeout.ms": 5000,
    # A window's messages enter librdkafka's queues one at a time, and its broker thread sends what is queued
    # once the oldest message waited linger.ms: a longer pause of this thread mid-window splits the window.
    # With 4 processes spinning on 2 cores (a probe with this config, 3 partitions), 5 ms split 5 of 24
    # windows and 20 ms none of 30 (tests/integration/test_kafka_produce_batch.py checks it); the full-speed
    # test ran as fast or faster (13,156 and 13,781 events/s at 5 ms; 15,734 and 18,112 at 20).
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 500,
    "log_level": 2,  # an absent broker is reported once by the SDK, not per reconnect attempt
}

#: On top of :data:`SDK_PRODUCER_CONFIG` with ``KafkaSettings.enable_idempotence``: librdkafka retries
#: within ``message.timeout.ms`` and the broker drops a retried batch it already has; a send that still
#: fails is read back as without idempotence (it may have been written before the broker died).
SDK_IDEMPOTENT_CONFIG: dict[str, Any] = {"enable.idempotence": True, "retries": 1_000_000}

#: Of a close's timeout, kept for joining the worker (longer than its longest blocking call, a broker probe).
_JOIN_RESERVE_S = 2.5

#: A spool frame's bytes besides key and value (length and checksum header).
_FRAME_OVERHEAD = 16

#: One window: small enough to travel as one request per partition (batch.size, message.max.bytes).
WINDOW_EVENTS = 2000
WINDOW_BYTES = 800_000

#: Delivery errors that retrying cannot fix: the event is counted as failed and not sent again.
_PERMANENT = frozenset({"MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "INVALID_RECORD", "CORRUPT_MESSAGE",
                        "RECORD_LIST_TOO_LARGE", "_INVALID_ARG", "TOPIC_AUTHORIZATION_FAILED",
                        "INVALID_REQUIRED_ACKS", "UNSUPPORTED_VERSION"})

#: Dropped events are logged at most this often (and counted in ``stats()`` always).
DROP_LOG_INTERVAL_S = 10.0
#: Attribute of the first event sealed after events of its stream were dropped: how many.
DROPPED_ATTRIBUTE = "agentaudit.dropped_before"

DIRECT, SPOOLING = "direct", "spooling"
_TAIL_SCAN_S = 0.1  # how often idle streams are looked at for a checkpoint that is due
_BATCH = 2000
#: while emits wait for room, room is made every this many events (sealing 2000 took 1.5-1.9 s on a
#: 2-core machine at load 12, close to making a waiting emit time out)
_BATCH_WHILE_WAITED_ON = 250
_MARK_ROOM = 64 * 1024  # spool room wanted before a gap marker is sealed (it would be dropped too)
_READBACK_IDLE = 0.7

#: The schema's defaults a record may share (immutable ones; links and attributes are made per record).
_DEFAULTS = {name: value for name, value in ACTION_DEFAULTS.items() if not isinstance(value, (list, dict))}

#: A window entry's delivery state: sent and unanswered, confirmed, failed (maybe written: read back), lost.
_SENT, _OK, _FAILED, _LOST = 0, 1, 2, 3


@dataclass(slots=True)
class _WindowEntry:
    """One sealed event of the window in flight; its delivery report fills in the rest."""

    key: bytes
    value: bytes
    state: int = _SENT
    #: set by the delivery report (None until then).
    partition: int | None = None
    #: the offset the broker gave it (-1 until confirmed).
    offset: int = -1
    #: where it ends in the spool, when the window was read from the spool (confirmed up to there).
    end: Position | None = None


def _spool_end(entry: _WindowEntry) -> Position:
    assert entry.end is not None  # noqa: S101 - narrows the Optional: only windows read from the spool are confirmed there
    return entry.end


class Worker(threading.Thread):
    """Owns the chains, the codec, the Kafka producer and the spool of one client."""

    def __init__(self, *, queue: EventQueue, settings: SdkSettings, kafka: KafkaSettings, topic: str,
                 spool: Spool, instance_id: str, redactor: Redactor | None,
                 producer_config: dict[str, Any] | None = None, ensure_topic: bool = True,
                 signing_key: SigningKey | None = None) -> None:
        super().__init__(name=f"agentaudit-sdk-{instance_id[:8]}", daemon=True)
        self.queue = queue
        self.settings = settings
        self.kafka = kafka
        self.topic = topic
        self.spool = spool
        self.instance_id = instance_id
        self.redactor = redactor
        idempotent = SDK_IDEMPOTENT_CONFIG if kafka.enable_idempotence else {}
        self.producer_config = {**SDK_PRODUCER_CONFIG, **idempotent, **(producer_config or {})}
        self.ensure_topic = ensure_topic
        self.codec = AvroCodec("action", max_message_bytes=kafka.max_message_bytes)
        self.chains: dict[str, StreamChain] = {}
        self.mode = SPOOLING if spool.pending else DIRECT
        self._producer: KafkaProducer | None = None
        self._topic_ready = not ensure_topic
        self._next_topic_try = 0.0
        self._mem: deque[tuple[bytes, bytes]] = deque()  # sealed, not yet sent (direct mode)
        self._window: list[_WindowEntry] = []
        self._window_from_spool = False
        self.sealed_bytes = 0  # spool bytes of every event sealed so far (framed), for has_room's estimate
        self._window_sent_at = 0.0
        self._confirmed: dict[int, int] = {}  # partition -> highest confirmed offset
        self._next_readback = 0.0
        self._event_prefix = str(uuid.uuid4())[:24]
        self._event_counter = itertools.count()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle_since = 0
        self.flush_requests = 0
        self.stats: dict[str, int] = dict.fromkeys(
            ("sealed", "delivered", "spooled", "replayed", "dropped_spool_full", "failed", "invalid",
             "redaction_errors", "spill_events"), 0)
        self._unshown: dict[str, int] = {}  # stream -> events dropped before its next sealed event
        self._next_drop_log = 0.0
        self._drops_logged = (0, 0)
        self._static = {"tenant": settings.tenant, "agent_version": settings.agent_version,
                        "environment": settings.environment}
        # signed checkpoints (schemas.checkpoints), due after checkpoint_events or checkpoint_seconds (monotonic)
        self.signing_key = signing_key
        self._uncovered = CheckpointSchedule(signing_key, every_events=settings.checkpoint_events,
                                             every_seconds=settings.checkpoint_seconds) if signing_key else None
        self._next_tail_scan = 0.0
        self._tails_wanted = threading.Event()  # flush/close: cover every stream's tail now
        self.stats["checkpoints"] = 0

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        queue = self.queue
        while True:
            try:
                stopping = self._stopping.is_set()
                gaps = queue.take_gaps()
                if gaps:
                    self._skip_dropped(gaps)
                items = queue.take(_BATCH_WHILE_WAITED_ON if queue.waiting else _BATCH)
                if items:
                    self._handle(items)
                elif self._unshown and (self.mode == DIRECT or self.spool.room_for(_MARK_ROOM)):
                    self._mark_unshown_gaps()  # the agent went quiet right after a drop
                if self._uncovered and (not items or len(queue) == 0):
                    self._cover_tails()
                elif self._tails_wanted.is_set() and not len(queue):
                    self._tails_wanted.clear()
                self._service()
                self._report_drops()
                if stopping and not len(queue):
                    break
                if not items or len(queue) == 0:
                    self._set_idle()
                    queue.wait(0.005 if self._busy() else 0.05)
            except Exception:  # noqa: BLE001 - the worker must survive anything; the agent never sees it
                _log.exception("sdk.worker_error", action="continuing")
                time.sleep(0.05)

    def unspooled(self) -> int:
        """Sealed events held in memory (waiting or in a window) that would go to the spool if the broker left."""
        return len(self._mem) + (0 if self._window_from_spool else len(self._window))

    def mean_event_bytes(self) -> int:
        """The mean spool size of the events sealed so far (0 before the first)."""
        sealed = self.stats["sealed"]
        return self.sealed_bytes // sealed if sealed else 0

    def _busy(self) -> bool:
        return bool(self._window or self._mem or not self.spool.empty
                    or (self._uncovered and self._tails_wanted.is_set()))

    def _set_idle(self) -> None:
        if not len(self.queue) and not self._busy():
            self._idle.set()
        else:
            self._idle.clear()

    def stop(self) -> None:
        self._stopping.set()
        self.queue.wake()

    def wait_idle(self, timeout: float) -> bool:
        """Block until everything emitted so far is confirmed by the broker, or ``timeout``.

        With a signing key, every stream's tail is covered by a checkpoint first.
        """
        deadline = time.monotonic() + timeout
        self._idle.clear()
        if self.signing_key is not None:
            self._tails_wanted.set()
        self.queue.wake()
        while time.monotonic() < deadline:
            if self._idle.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                if not len(self.queue) and not self._busy():
                    return True
                self._idle.clear()
            if not self.is_alive():
                return False
        return False

    # -- sealing --------------------------------------------------------------------------------

    def _handle(self, items: list[QueueEntry]) -> None:
        out: list[tuple[bytes, bytes]] = []
        for item in items:
            sealed = self._seal(item)
            if sealed is not None:
                out.append(sealed)
        if out:
            self._route(out)

    def _seal(self, item: QueueEntry, checkpoint: bool = False) -> tuple[bytes, bytes] | None:
        agent, t_us = item.agent, item.time_us
        # the schema's defaults, then what this event says (tenant, versions and the chain's fields come next)
        record = {
            **_DEFAULTS, "event_id": f"{self._event_prefix}{next(self._event_counter):012x}",
            "agent_id": agent, "run_id": item.run_id, "trace_id": item.trace_id, "action_id": item.action_id,
            "parent_action_id": item.parent_action_id, "links": [], "depth": item.depth, "kind": item.kind,
            "name": item.name, "phase": item.phase, "actor": {"type": "agent", "id": agent}, "start_time_us": t_us,
            "event_time_us": t_us, "attributes": {},
        }
        record.update(self._static)
        if item.extra:
            self._apply(record, item.extra)
        if self.redactor is not None:  # every free-text field, bodies captured or not
            failed = redact_fields(record, self.redactor)
            if failed:
                self.stats["redaction_errors"] += failed
        stream_id = f"{self.instance_id}/{agent}"
        chain = self.chains.get(stream_id)
        if chain is None:
            chain = self.chains[stream_id] = StreamChain(stream_id)
        if self._unshown and stream_id in self._unshown:
            record["attributes"] = {**(record["attributes"] or {}),
                                    DROPPED_ATTRIBUTE: str(self._unshown.pop(stream_id))}
        schedule = self._uncovered
        signature = None
        if schedule is not None:
            signature = schedule.attributes(stream_id, record, chain, time.monotonic(), force=checkpoint)
            if signature is not None:
                record["attributes"] = {**(record["attributes"] or {}), **signature}
        try:
            value = chain.seal(record, self.codec)
        except Exception as exc:  # noqa: BLE001 - a bad value is counted, never raised into the agent
            self.stats["invalid"] += 1
            _log.warning("sdk.unencodable", kind=item.kind, action_name=item.name, agent=agent, error=exc)
            return None
        self.stats["sealed"] += 1
        self.sealed_bytes += len(value) + len(stream_id) + _FRAME_OVERHEAD
        if schedule is not None:
            schedule.sealed(stream_id, time.monotonic(), signed=signature is not None, point=checkpoint)
            self.stats["checkpoints"] = schedule.checkpoints
        return stream_id.encode(), value

    def _cover_tails(self) -> None:
        """Seal a checkpoint event into each stream whose uncovered events are ``checkpoint_seconds`` old
        (all of them when a flush or close asked), so no event stays unsigned for long."""
        schedule = self._uncovered
        now = time.monotonic()
        everything = self._tails_wanted.is_set()
        if schedule is None or (not everything and now < self._next_tail_scan):
            return
        self._next_tail_scan = now + _TAIL_SCAN_S
        for stream_id in schedule.due(now, everything):
            self._seal_marker(stream_id, CHECKPOINT_NAME, checkpoint=True)
        if everything:
            self._tails_wanted.clear()

    def _skip_dropped(self, gaps: dict[str, int]) -> None:
        """Events the queue dropped before sealing: their stream's seq moves past them, so the next
        event shows the gap (placed within one worker batch of where the drops happened). A stream
        that has no event yet first gets a marker at seq 0: a stream that starts later than 0 looks
        to the integrity rules like one whose start they did not see, not like a gap."""
        for agent, count in gaps.items():
            stream_id = f"{self.instance_id}/{agent}"
            chain = self.chains.get(stream_id)
            if chain is None or chain.seq == 0:
                self._seal_marker(stream_id)
                chain = self.chains[stream_id]
            chain.seq += count
            self._unshown[stream_id] = self._unshown.get(stream_id, 0) + count

    def _mark_unshown_gaps(self) -> None:
        """A stream whose last events were dropped gets a marker event, so that the gap is visible."""
        gaps = self.queue.take_gaps()
        if gaps:
            self._skip_dropped(gaps)
        for stream_id in list(self._unshown):
            self._seal_marker(stream_id)

    def _seal_marker(self, stream_id: str, name: str = "agentaudit.dropped", checkpoint: bool = False) -> None:
        """Seal and route a point event (kind ``other``) named ``name`` into ``stream_id``."""
        mark_id = f"{self._event_prefix}{next(self._event_counter):012x}"
        item = QueueEntry(agent=stream_id.split("/", 1)[1], kind="other", phase="point", name=name,
                          action_id=mark_id, parent_action_id=None, trace_id=mark_id, depth=0,
                          run_id=self.instance_id, time_us=time.time_ns() // 1000, extra=None, size=0)
        sealed = self._seal(item, checkpoint)
        if sealed is not None:
            self._route([sealed])

    def _apply(self, record: dict[str, Any], extra: dict[str, Any]) -> None:
        bodies = extra.pop("_bodies", None)
        record.update(extra)
        if bodies:
            limit = self.settings.body_max_bytes
            for field, text in bodies:
                if self.redactor is not None:
                    try:
                        text = self.redactor(text)
                    except Exception as exc:  # noqa: BLE001 - a broken hook must not leak the body
                        self.stats["redaction_errors"] += 1
                        _log.warning("sdk.redactor_failed", field=field, error=repr(exc), action="body left out")
                        continue
                record[field] = cap(text, limit)

    # -- routing --------------------------------------------------------------------------------

    def _route(self, sealed: list[tuple[bytes, bytes]]) -> None:
        if self.mode == DIRECT:
            self._mem.extend(sealed)
            if len(self._mem) > self.settings.queue_max_events:
                self._spill("events pile up faster than the broker confirms them")
        else:
            self._to_spool(sealed)

    def _spill(self, why: str) -> None:
        """From now on events go to the spool, starting with those waiting in memory."""
        if self.mode == SPOOLING:
            return
        self.mode = SPOOLING
        self.stats["spill_events"] += 1
        _log.warning("sdk.spooling", reason=why, spool=self.spool.dir)
        waiting = list(self._mem)
        self._mem.clear()
        self._to_spool(waiting)

    def _to_spool(self, sealed: list[tuple[bytes, bytes]]) -> None:
        spool = self.spool
        policy = self.settings.full_policy
        for key, value in sealed:
            while not spool.append(key, value):
                if policy == "drop_oldest":
                    dropped = spool.drop_oldest()
                    self.stats["dropped_spool_full"] += dropped
                    if dropped == 0:
                        break
                elif policy == "block":
                    # keep delivering until there is room; meanwhile the agent's queue fills and its
                    # emits wait at most block_ms each (then that event is dropped and counted there)
                    self._pump()
                    if self._stopping.is_set():
                        break
                    time.sleep(0.005)
                else:
                    break  # spool: the newest sealed event is dropped; its stream shows the gap
            else:
                self.stats["spooled"] += 1
                continue
            self.stats["dropped_spool_full"] += 1
            stream_id = key.decode()
            self._unshown[stream_id] = self._unshown.get(stream_id, 0) + 1
        spool.sync()

    def _report_drops(self) -> None:
        """Log what was dropped since the last report, at most once per ``DROP_LOG_INTERVAL_S``."""
        now = time.monotonic()
        if now < self._next_drop_log:
            return
        queue_dropped, spool_dropped = self.queue.dropped, self.stats["dropped_spool_full"]
        last_queue, last_spool = self._drops_logged
        if queue_dropped == last_queue and spool_dropped == last_spool:
            return
        self._drops_logged = (queue_dropped, spool_dropped)
        self._next_drop_log = now + DROP_LOG_INTERVAL_S
        _log.warning("sdk.dropped", queue_full=queue_dropped - last_queue, spool_full=spool_dropped - last_spool,
                     queue_full_total=queue_dropped, spool_full_total=spool_dropped, policy=self.settings.full_policy,
                     spool=self.spool.dir, hint="the streams show these as sequence gaps; raise "
                     "AGENTAUDIT_QUEUE_MAX_EVENTS or AGENTAUDIT_SPOOL_MAX_BYTES, or slow the agent down")

    # -- Kafka ----------------------------------------------------------------------------------

    def _ready(self) -> bool:
        """Whether a producer exists and the topic is known to exist (tried at most every 2 s)."""
        if self._topic_ready and self._producer is not None:
            return True
        now = time.monotonic()
        if not self._topic_ready:
            if now < self._next_topic_try:
                return False
            try:
                KafkaAdmin(self.kafka).ensure_topics([self.topic], timeout=1.0)
                self._topic_ready = True
            except KafkaError as exc:
                self._next_topic_try = now + 2.0
                _log.warning("sdk.topic_unavailable", topic=self.topic, error=exc)
                return False
        if self._producer is None:
            try:
                config = {"error_cb": self._on_client_error, **self.producer_config}
                self._producer = KafkaProducer(self.kafka, config, buffer_timeout=0.0)
            except KafkaError as exc:
                _log.error("sdk.producer_unavailable", error=exc)
                return False
        return True

    def _on_client_error(self, err: Any) -> None:
        # librdkafka reconnects by itself; the spill warning already told the user the broker is away
        _log.debug("sdk.kafka_client", error=err)

    def _service(self) -> None:
        self._pump()

    def _pump(self) -> None:
        """Advance delivery: collect reports, resolve failures, start the next window."""
        producer = self._producer
        if producer is not None:
            producer.poll(0)
        if self._window:
            if any(e.state == _SENT for e in self._window):
                if self.mode == DIRECT and time.monotonic() - self._window_sent_at > self.settings.spill_after_ms / 1000:
                    self._spill(f"no delivery confirmed for {self.settings.spill_after_ms} ms")
                return
            if not self._settle():
                return
        self._send_next()

    def _settle(self) -> bool:
        """Every event of the window has its report: confirm it, or find out what the broker kept."""
        window = self._window
        failed = [e for e in window if e.state == _FAILED]
        if failed:
            now = time.monotonic()
            if now < self._next_readback:
                return False
            try:
                landed = self._read_back(failed)
            except KafkaError as exc:
                self._next_readback = now + 1.0
                if self.mode == DIRECT:
                    self._spill(f"the broker is away ({exc})")
                return False
            resend = []
            for entry in failed:
                if entry.value in landed:
                    entry.state = _OK
                else:
                    resend.append(entry)
            if resend:
                _log.info("sdk.resend", events=len(resend), already_written=len(failed) - len(resend))
                self._produce_window(resend)
                return False
        delivered = sum(1 for e in window if e.state == _OK)
        self.stats["delivered"] += delivered
        if self._window_from_spool:
            self.spool.confirm(_spool_end(window[-1]), len(window))
            self.stats["replayed"] += delivered
        confirmed = self._confirmed
        for e in window:
            if e.state == _OK and e.partition is not None and e.offset >= 0 \
                    and e.offset > confirmed.get(e.partition, -1):
                confirmed[e.partition] = e.offset
        self._window = []
        self._window_from_spool = False
        return True

    def _read_back(self, failed: list[_WindowEntry]) -> set[bytes]:
        """Values of ``failed`` events that the broker did store, read from the last confirmed offsets."""
        partitions = {e.partition for e in failed if e.partition is not None and e.partition >= 0}
        if not partitions:
            return set()  # never assigned a partition: never sent
        admin = KafkaAdmin(self.kafka)
        if not admin.ping(timeout=0.25):
            raise KafkaError("broker not reachable for the read-back", code="_TRANSPORT", retriable=True)
        wanted = {e.value for e in failed}
        landed: set[bytes] = set()
        with KafkaConsumer(self.kafka, f"agentaudit-sdk-readback-{uuid.uuid4().hex}",
                           {"enable.partition.eof": False, "fetch.wait.max.ms": 50}) as consumer:
            consumer.assign([(self.topic, p, self._confirmed.get(p, -2) + 1) if p in self._confirmed
                             else (self.topic, p, -2) for p in partitions])
            deadline = time.monotonic() + 10.0
            last = time.monotonic()
            while time.monotonic() - last < _READBACK_IDLE and time.monotonic() < deadline:
                batch = consumer.consume_batch(1000, timeout=0.1)
                if batch:
                    last = time.monotonic()
                    for msg in batch:
                        value = msg.value()
                        if value is not None and value in wanted:
                            landed.add(value)
                    if len(landed) == len(wanted):
                        break
        return landed

    def _send_next(self) -> None:
        if self.mode == DIRECT:
            if not self._mem:
                return
            if not self._ready():
                self._spill("the broker is not reachable")
                return
            window: list[_WindowEntry] = []
            size = 0
            mem = self._mem
            while mem and len(window) < WINDOW_EVENTS:  # what fits, as the spool hands it out: one batch each
                key, value = mem[0]
                size += len(key) + len(value)
                if window and size > WINDOW_BYTES:
                    break
                mem.popleft()
                window.append(_WindowEntry(key, value))
            self._window_from_spool = False
        else:
            if self.spool.empty:
                self.mode = DIRECT
                _log.info("sdk.direct_spool_drained")
                return
            if not self._ready():
                return
            # the spool hands out only what fits: the read position never passes a record left out
            window = [_WindowEntry(key, value, end=end)
                      for key, value, end in self.spool.read(WINDOW_EVENTS, WINDOW_BYTES)]
            if not window:
                return
            self._window_from_spool = True
        self._window = window
        self._produce_window(window)

    def _produce_window(self, entries: list[_WindowEntry]) -> None:
        producer = self._producer
        assert producer is not None  # noqa: S101 - narrows the Optional: the producer exists once the worker runs
        self._window_sent_at = time.monotonic()
        messages = []
        for entry in entries:
            entry.state = _SENT

            def delivered(err: KafkaError | None, msg: Any, entry: _WindowEntry = entry) -> None:
                entry.partition = msg.partition()
                if err is None:
                    entry.state = _OK
                    entry.offset = msg.offset()
                elif err.code in _PERMANENT:
                    entry.state = _LOST
                    self.stats["failed"] += 1
                    _log.error("sdk.delivery_failed", permanent=True, error=err)
                else:
                    entry.state = _FAILED

            messages.append((entry.key, entry.value, delivered))
        # Queued in one call, and kept whole by linger.ms: each partition's share of the window leaves in one
        # request, so no request of it can succeed after an earlier one failed (the re-send would land behind).
        for entry, refused in zip(entries, producer.produce_batch(self.topic, messages), strict=True):
            if refused is not None:
                entry.state = _LOST if refused.code != "_QUEUE_FULL" and not refused.retriable else _FAILED
                if entry.state == _LOST:
                    self.stats["failed"] += 1
                    _log.error("sdk.produce_refused", error=refused)

    # -- closing --------------------------------------------------------------------------------

    def finish(self, timeout: float) -> None:
        """Stop the loop, deliver what can be delivered within ``timeout``, spool the rest, close."""
        deadline = time.monotonic() + timeout
        # keep time to join: with the broker away the loop can be inside a ~1 s probe when the wait ends,
        # and a worker left running keeps the spool open and unsaved
        self.wait_idle(timeout - min(timeout / 2, _JOIN_RESERVE_S))
        self.stop()
        self.join(max(0.1, deadline - time.monotonic()))
        if self.is_alive():
            _log.warning("sdk.close_busy", timeout_s=round(timeout, 1), hint="worker still busy")
            return
        self._mark_unshown_gaps()
        producer = self._producer
        if producer is not None:
            producer.poll(0)
        if self._window and not any(e.state in (_SENT, _FAILED) for e in self._window):
            self._settle()
        elif self._window and self._window_from_spool:
            # confirm the delivered prefix so that the next process does not send it again
            done = 0
            for entry in self._window:
                if entry.state not in (_OK, _LOST):
                    break
                done += 1
            if done:
                self.spool.confirm(_spool_end(self._window[done - 1]), done)
                self.stats["delivered"] += done
        # unconfirmed events go to the spool for the next process; window events first (oldest)
        leftover = [(e.key, e.value) for e in self._window if e.state != _OK] \
            if not self._window_from_spool else []
        leftover.extend(self._mem)
        if leftover:
            if self.mode == DIRECT or self.spool.empty:
                for key, value in leftover:
                    self.spool.append(key, value)
                self.spool.sync()
            else:
                self.spool.prepend(leftover)
            _log.warning("sdk.close_spooled", events=len(leftover), hint="unconfirmed events left for the next process")
        self._window = []
        self._mem.clear()
        self._producer = None
        if producer is not None:
            try:
                producer.close(timeout=0.0)
            except KafkaError:
                pass
        self.spool.close()
