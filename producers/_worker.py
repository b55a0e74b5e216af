"""The background thread: seal events in order, produce them, spill to the spool and replay it.

Delivery keeps per-stream order through every path:

- **direct**: sealed events go to Kafka (idempotent producer, never timing out, so librdkafka
  retries in order and without duplicates while the broker is away);
- **spooling**: once the broker looks away (nothing confirmed for ``spill_after_ms`` while
  messages wait, or the local producer queue is full), every new event goes to the spool,
  behind anything still held by librdkafka;
- **replay**: when everything handed to librdkafka is confirmed, the spool is sent in order with
  a bounded window; a record leaves the spool only once the broker confirmed it. New events keep
  going to the spool tail until it is empty, then delivery is direct again.

Events that librdkafka fails (a fatal producer error, or still unconfirmed at close) were
sealed earlier than anything spooled since, so they go in *front* of the spool.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from typing import Any

from agentaudit.infra.exceptions import KafkaError
from agentaudit.infra.kafka import KafkaAdmin, KafkaProducer
from agentaudit.producers._queue import EventQueue
from agentaudit.producers._spool import Position, Spool
from agentaudit.producers.redaction import Redactor, cap
from agentaudit.producers.settings import SdkSettings
from agentaudit.schemas import AvroCodec, StreamChain
from agentaudit.settings import KafkaSettings

__all__ = ["SDK_PRODUCER_CONFIG", "Worker"]

_log = logging.getLogger("agentaudit.producers")

#: librdkafka settings of the SDK's producer: idempotent (ordered, no duplicates on retry) and
#: never giving up on a message by itself; the spool takes over when the broker is away.
SDK_PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "max.in.flight.requests.per.connection": 5,
    "message.timeout.ms": 0,
    "linger.ms": 5,
    "queue.buffering.max.messages": 20_000,
    "retry.backoff.ms": 100,
    "retry.backoff.max.ms": 1000,
    "reconnect.backoff.max.ms": 1000,
}

#: Delivery errors that retrying cannot fix: the event is counted as failed, not spooled again.
_PERMANENT = frozenset({"MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "INVALID_RECORD", "CORRUPT_MESSAGE",
                        "RECORD_LIST_TOO_LARGE", "_INVALID_ARG", "TOPIC_AUTHORIZATION_FAILED",
                        "INVALID_REQUIRED_ACKS", "UNSUPPORTED_VERSION", "_UNKNOWN_TOPIC", "UNKNOWN_TOPIC_OR_PART"})

DIRECT, SPOOLING = "direct", "spooling"
_BATCH = 2000
_REPLAY_WINDOW = 5000


class Worker(threading.Thread):
    """Owns the chains, the codec, the Kafka producer and the spool of one client."""

    def __init__(self, *, queue: EventQueue, settings: SdkSettings, kafka: KafkaSettings, topic: str,
                 spool: Spool, instance_id: str, redactor: Redactor | None,
                 producer_config: dict[str, Any] | None = None, ensure_topic: bool = True) -> None:
        super().__init__(name=f"agentaudit-sdk-{instance_id[:8]}", daemon=True)
        self.queue = queue
        self.settings = settings
        self.kafka = kafka
        self.topic = topic
        self.spool = spool
        self.instance_id = instance_id
        self.redactor = redactor
        self.producer_config = {**SDK_PRODUCER_CONFIG, **(producer_config or {})}
        self.ensure_topic = ensure_topic
        self.codec = AvroCodec("action", max_message_bytes=kafka.max_message_bytes)
        self.chains: dict[str, StreamChain] = {}
        self.mode = SPOOLING if spool.pending else DIRECT
        self._producer: KafkaProducer | None = None
        self._topic_ready = not ensure_topic
        self._next_topic_try = 0.0
        self._fatal = False
        # direct messages handed to librdkafka and not yet confirmed: ordinal -> (key, value)
        self._direct: dict[int, tuple[bytes, bytes]] = {}
        self._direct_failed: dict[int, tuple[bytes, bytes]] = {}
        self._ordinal = itertools.count()
        self._waiting_since = 0.0
        # replayed spool records: [end position, state] where state 0 = in flight, 1 = done
        self._replay: deque[list[Any]] = deque()
        self._replay_failed = False
        self._event_prefix = str(uuid.uuid4())[:24]
        self._event_counter = itertools.count()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle_since = 0
        self.flush_requests = 0
        self.stats: dict[str, int] = dict.fromkeys(
            ("sealed", "delivered", "spooled", "replayed", "dropped_spool_full", "failed", "invalid",
             "redaction_errors", "spill_events"), 0)
        self._static = {"tenant": settings.tenant, "agent_version": settings.agent_version,
                        "environment": settings.environment}

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        queue = self.queue
        while True:
            try:
                stopping = self._stopping.is_set()
                items = queue.take(_BATCH)
                if items:
                    self._handle(items)
                self._service()
                if stopping and not len(queue):
                    break
                if not items or len(queue) == 0:
                    self._set_idle()
                    queue.wait(0.01 if (self._direct or self._replay or not self.spool.empty) else 0.05)
            except Exception:  # noqa: BLE001 - the worker must survive anything; the agent never sees it
                _log.exception("sdk.worker_error; continuing")
                time.sleep(0.05)

    def _set_idle(self) -> None:
        if not len(self.queue) and not self._direct and not self._replay and self.spool.empty:
            self._idle.set()
        else:
            self._idle.clear()

    def stop(self) -> None:
        self._stopping.set()
        self.queue.wake()

    def wait_idle(self, timeout: float) -> bool:
        """Block until everything emitted so far is confirmed by the broker, or ``timeout``."""
        deadline = time.monotonic() + timeout
        self._idle.clear()
        self.queue.wake()
        while time.monotonic() < deadline:
            if self._idle.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                if not len(self.queue) and not self._direct and not self._replay and self.spool.empty:
                    return True
                self._idle.clear()
            if not self.is_alive():
                return False
        return False

    # -- sealing --------------------------------------------------------------------------------

    def _handle(self, items: list[tuple[Any, ...]]) -> None:
        out: list[tuple[bytes, bytes]] = []
        for item in items:
            sealed = self._seal(item)
            if sealed is not None:
                out.append(sealed)
        if out:
            self._route(out)

    def _seal(self, item: tuple[Any, ...]) -> tuple[bytes, bytes] | None:
        agent, kind, phase, name, action_id, parent, trace, depth, run_id, t_us, extra, _size = item
        record = {
            "event_id": f"{self._event_prefix}{next(self._event_counter):012x}",
            "agent_id": agent, "run_id": run_id, "trace_id": trace, "action_id": action_id,
            "parent_action_id": parent, "links": [], "depth": depth, "kind": kind, "name": name, "phase": phase,
            "status": "unset", "error_type": None, "error_message": None,
            "actor": {"type": "agent", "id": agent}, "model": None, "input_tokens": 0, "output_tokens": 0,
            "cost_usd": 0.0, "latency_us": None, "start_time_us": t_us, "end_time_us": None,
            "event_time_us": t_us, "input_digest": None, "output_digest": None, "input_body": None,
            "output_body": None, "payload_bytes": 0, "attributes": {},
        }
        record.update(self._static)
        if extra:
            self._apply(record, extra)
        stream_id = f"{self.instance_id}/{agent}"
        chain = self.chains.get(stream_id)
        if chain is None:
            chain = self.chains[stream_id] = StreamChain(stream_id)
        try:
            value = chain.seal(record, self.codec)
        except Exception as exc:  # noqa: BLE001 - a bad value is counted, never raised into the agent
            self.stats["invalid"] += 1
            _log.warning("sdk.unencodable kind=%s name=%s agent=%s error=%s", kind, name, agent, exc)
            return None
        self.stats["sealed"] += 1
        return stream_id.encode(), value

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
                        _log.warning("sdk.redactor_failed field=%s error=%r; body left out", field, exc)
                        continue
                record[field] = cap(text, limit)

    # -- routing --------------------------------------------------------------------------------

    def _route(self, sealed: list[tuple[bytes, bytes]]) -> None:
        if self.mode == DIRECT and self._ready():
            for index, (key, value) in enumerate(sealed):
                if not self._produce_direct(key, value):
                    self._enter_spooling("the local producer queue is full")
                    self._to_spool(sealed[index:])
                    return
            return
        if self.mode == DIRECT:
            self._enter_spooling("the broker is not reachable")
        self._to_spool(sealed)

    def _enter_spooling(self, why: str) -> None:
        if self.mode != SPOOLING:
            self.mode = SPOOLING
            self.stats["spill_events"] += 1
            _log.warning("sdk.spooling reason=%s spool=%s", why, self.spool.dir)

    def _to_spool(self, sealed: list[tuple[bytes, bytes]]) -> None:
        spool = self.spool
        for key, value in sealed:
            while not spool.append(key, value):
                if self.settings.full_policy == "drop_oldest":
                    dropped = spool.drop_oldest()
                    self.stats["dropped_spool_full"] += dropped
                    _log.warning("sdk.spool_full dropped_oldest=%d spool=%s", dropped, spool.dir)
                    if dropped == 0 and not spool.room_for(len(value) + len(key) + 10):
                        self.stats["dropped_spool_full"] += 1
                        break
                else:
                    # block: keep delivering until there is room; the agent's queue fills and its
                    # emits wait at most block_ms each (then drop, counted there).
                    self._service()
                    if self._stopping.is_set() and not self._replay and not self._direct:
                        self.stats["dropped_spool_full"] += 1
                        break
                    time.sleep(0.01)
            else:
                self.stats["spooled"] += 1
        spool.sync()

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
                _log.warning("sdk.topic_unavailable topic=%s error=%s", self.topic, exc)
                return False
        if self._producer is None:
            try:
                config = dict(self.producer_config)
                config["error_cb"] = self._on_client_error
                self._producer = KafkaProducer(self.kafka, config, buffer_timeout=0.0)
            except KafkaError as exc:
                _log.error("sdk.producer_unavailable error=%s", exc)
                return False
        return True

    def _on_client_error(self, err: Any) -> None:
        try:
            fatal = bool(err.fatal())
        except Exception:  # noqa: BLE001
            fatal = False
        if fatal:
            self._fatal = True
            _log.error("sdk.producer_fatal error=%s; the producer is recreated and unconfirmed events re-sent "
                       "from the spool", err)
        else:
            _log.debug("sdk.kafka_client error=%s", err)

    def _produce_direct(self, key: bytes, value: bytes) -> bool:
        producer = self._producer
        assert producer is not None
        ordinal = next(self._ordinal)
        if not self._direct:
            self._waiting_since = time.monotonic()
        self._direct[ordinal] = (key, value)

        def delivered(err: KafkaError | None, _msg: Any, ordinal: int = ordinal) -> None:
            entry = self._direct.pop(ordinal, None)
            if err is None:
                self.stats["delivered"] += 1
                self._waiting_since = time.monotonic()
            elif err.code in _PERMANENT:
                self.stats["failed"] += 1
                _log.error("sdk.delivery_failed permanently: %s", err)
            elif entry is not None:
                self._direct_failed[ordinal] = entry

        try:
            producer.produce(self.topic, value, key=key, on_delivery=delivered)
        except KafkaError as exc:
            self._direct.pop(ordinal, None)
            if exc.code == "_QUEUE_FULL" or exc.retriable or self._fatal:
                return False
            self.stats["failed"] += 1
            _log.error("sdk.produce_refused %s", exc)
        return True

    def _service(self) -> None:
        producer = self._producer
        if producer is not None:
            producer.poll(0)
        now = time.monotonic()
        spill_after = self.settings.spill_after_ms / 1000.0
        if self.mode == DIRECT and self._direct and now - self._waiting_since > spill_after:
            self._enter_spooling(f"no delivery confirmed for {self.settings.spill_after_ms} ms")
        if self._fatal and not self._direct and not self._replay:
            self._reset_producer()
        if self._direct_failed and not self._direct:
            # Sealed before anything spooled since: they go in front of the spool, in order.
            failed = [self._direct_failed[k] for k in sorted(self._direct_failed)]
            self._direct_failed.clear()
            self.spool.prepend(failed)
            self.stats["spooled"] += len(failed)
            self._enter_spooling("deliveries failed")
        if self.mode == SPOOLING:
            self._replay_step()

    def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        self._fatal = False
        if producer is not None:
            try:
                producer.close(timeout=0.5)
            except KafkaError:
                pass

    def _replay_step(self) -> None:
        # confirm the contiguous prefix of replayed records
        replay = self._replay
        done = 0
        last: Position | None = None
        while replay and replay[0][1]:
            entry = replay.popleft()
            done += 1
            last = entry[0]
        if last is not None:
            self.spool.confirm(last, done)
            self.stats["replayed"] += done
            self.stats["delivered"] += done
        if self._replay_failed and not replay:
            self._replay_failed = False
            self.spool.rewind()
        if self._direct or self._direct_failed:
            return  # older events still with librdkafka: they go first
        if self.spool.empty and not replay:
            self.mode = DIRECT
            _log.info("sdk.direct spool drained")
            return
        room = _REPLAY_WINDOW - len(replay)
        if room <= 0 or self._replay_failed or not self._ready():
            return
        records = self.spool.read(min(room, _BATCH))
        producer = self._producer
        assert producer is not None
        for key, value, end in records:
            entry = [end, 0]

            def delivered(err: KafkaError | None, _msg: Any, entry: list[Any] = entry) -> None:
                if err is None or err.code in _PERMANENT:
                    if err is not None:
                        self.stats["failed"] += 1
                        self.stats["delivered"] -= 1
                        _log.error("sdk.replay_failed permanently: %s", err)
                    entry[1] = 1
                else:
                    self._replay_failed = True
                    entry[1] = 1  # resent after the rewind

            try:
                producer.produce(self.topic, value, key=key, on_delivery=delivered)
            except KafkaError:
                self._replay_failed = True
                break
            replay.append(entry)

    # -- closing --------------------------------------------------------------------------------

    def finish(self, timeout: float) -> None:
        """Stop the loop, deliver what can be delivered within ``timeout``, spool the rest, close."""
        deadline = time.monotonic() + timeout
        self.wait_idle(timeout)
        self.stop()
        self.join(max(0.1, deadline - time.monotonic()))
        if self.is_alive():
            _log.warning("sdk.close worker still busy after %.1fs", timeout)
            return
        producer = self._producer
        if producer is not None:
            producer.poll(0)
            self._replay_step()
        # whatever librdkafka still holds was sealed before anything spooled: put it in front
        pending = {**self._direct, **self._direct_failed}
        if pending:
            self.spool.prepend([pending[k] for k in sorted(pending)])
            _log.warning("sdk.close spooled %d unconfirmed events for the next process", len(pending))
            self._direct.clear()
            self._direct_failed.clear()
        self._producer = None
        if producer is not None:
            try:
                producer.close(timeout=0.0)
            except KafkaError:
                pass
        self.spool.close()

