"""``agentaudit notify``: incidents and lifecycle events in, one notification per state change out.

The decide loop reads the incidents and lifecycle topics (its own consumer group, so the sink
never waits for it). A first sight of an incident is ``opened``; ``acknowledged``, ``resolved``,
``reopened`` and ``escalated`` lifecycle events are state changes when they change the folded
state (a second acknowledgement is not). Each change becomes one outbox row per route of the
owning team, in one SQLite transaction with the events applied; offsets are committed after it.

One delivery thread per route drains that route's rows in order: POST with retries, then a
``notified`` lifecycle event on the lifecycle topic (signed with the service key when given),
then the row is done. A receiver that is down, slow or hostile holds only its own route.

>>> notifier = Notifier(KafkaSettings(), NotifySettings(), load_owners("owners.yaml"))
>>> notifier.run(stop_event)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from agentaudit.consumers.exceptions import DeliveryError
from agentaudit.consumers.notify._outbox import Outbox, _Transaction
from agentaudit.consumers.notify.delivery import Sender
from agentaudit.consumers.notify.payloads import Notification, deep_link
from agentaudit.consumers.notify.routes import RouteTable, load_routes
from agentaudit.consumers.notify.settings import NotifySettings
from agentaudit.control.admission import check_lifecycle
from agentaudit.infra.exceptions import KafkaError
from agentaudit.logs import get_logger
from agentaudit.rules.owners import NOTIFIER, OwnershipMap
from agentaudit.schemas import Actor, ActorType, AvroCodec, IncidentLifecycleEvent, LifecycleType, SigningKey
from agentaudit.settings import KafkaSettings

__all__ = ["Notifier"]

_log = get_logger("agentaudit.consumers.notify")
_NS = uuid.UUID("5b0f7c7e-2f43-4c1e-9a55-0d3b8f1e6a21")


class Notifier:
    """The decide loop and the per-route delivery threads of one notifier process.

    :param kafka: broker and topics (``TopicNames.incidents``, ``.lifecycle``).
    :param settings: :class:`NotifySettings` (``AGENTAUDIT_NOTIFY_*``).
    :param owners: the ownership map with its teams' ``routes``; checked here (:class:`RouteConfigError`).
    :param key: the service key that signs ``notified`` events (``AGENTAUDIT_SERVICE_KEY_FILE``); default None.
    :param sender: how notifications are posted; default a :class:`Sender` over the network.
    :param authority: the :class:`~agentaudit.control.authority.Authority` lifecycle events are checked against
        (``AGENTAUDIT_AUTHORITY_FILE``), as the sink does: a forged ``resolved`` notifies nobody. Default None.
    """

    def __init__(self, kafka: KafkaSettings, settings: NotifySettings, owners: OwnershipMap, *,
                 key: SigningKey | None = None, sender: Sender | None = None,
                 routes: RouteTable | None = None, authority: Any = None) -> None:
        self.kafka = kafka
        self.settings = settings
        self.owners = owners
        self.routes = routes if routes is not None else load_routes(owners)
        self._routes_by_id = {r.id: r for team in self.routes.by_team.values() for r in team}
        self.key = key
        self.authority = authority
        self.sender = sender or Sender(settings)
        self.outbox = Outbox(settings.state_dir.expanduser() / "outbox.sqlite")
        self._incident_codec = AvroCodec("incident", max_message_bytes=kafka.max_message_bytes,
                                         schema_registry_url=kafka.schema_registry_url, topic=kafka.topics.incidents)
        self._lifecycle_codec = AvroCodec("incident_lifecycle", max_message_bytes=kafka.max_message_bytes,
                                          schema_registry_url=kafka.schema_registry_url, topic=kafka.topics.lifecycle)
        self._wake: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._producer: Any = None
        self._produce_lock = threading.Lock()
        self._recording = self._may_record()
        #: seconds from decision to a receiver's 2xx, per delivery (for the README's figure and the metrics)
        self.latencies: list[float] = []

    # -- deciding -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Decide and deliver until ``stop`` is set; uncommitted messages are re-read by the next run."""
        from agentaudit.infra.kafka import KafkaConsumer, KafkaProducer

        s, topics = self.settings, self.kafka.topics
        self._producer = KafkaProducer(self.kafka, {"acks": "all", "linger.ms": 5})
        for route_id in self.outbox.routes_pending():  # decided before a restart, not yet delivered
            self._wake_route(route_id, stop)
        consumer = KafkaConsumer(self.kafka, s.group, {"auto.offset.reset": "earliest", **s.consumer_config})
        consumer.subscribe([topics.incidents, topics.lifecycle])
        _log.info("notify.started", group=s.group, routes=len(self.routes), state=self.outbox.path)
        try:
            while not stop.is_set():
                try:
                    messages = consumer.consume_batch(s.batch_size, s.batch_timeout_ms / 1000)
                except KafkaError as exc:
                    _log.warning("notify.consume_failed", error=exc)
                    stop.wait(1.0)
                    continue
                if not messages:
                    continue
                for route_id in self.decide(messages):
                    self._wake_route(route_id, stop)
                consumer.commit(messages)  # after the outbox transaction: what is committed is decided
        finally:
            for event in self._wake.values():
                event.set()
            for thread in self._threads:
                thread.join(timeout=s.timeout_s * 2 + 1)
            consumer.close()
            self._producer.close(timeout=10)
            self.sender.close()
            self.outbox.close()

    def decide(self, messages: Sequence[Any]) -> set[str]:
        """Apply a batch in one transaction; returns the routes that have new notifications."""
        woken: set[str] = set()
        incidents_topic = self.kafka.topics.incidents
        with self.outbox.transaction() as tx:
            for message in messages:
                try:
                    if message.topic() == incidents_topic:
                        notes = self._on_incident(tx, self._incident_codec.decode(message.value() or b""))
                    else:
                        record = self._lifecycle_codec.decode(message.value() or b"")
                        if self.authority is not None and check_lifecycle(self.authority, record, message) is not None:
                            _log.warning("notify.refused_lifecycle", event_id=record.get("event_id"))
                            continue
                        notes = self._on_lifecycle(tx, record)
                except Exception as exc:  # noqa: BLE001 - a bad record is skipped, never stops notifying
                    _log.warning("notify.skipped", topic=message.topic(), partition=message.partition(),
                                 offset=message.offset(), error=exc)
                    continue
                for note in notes:
                    if tx.decide(note):
                        woken.add(note.route_id)
        return woken

    def _team_of(self, record: dict[str, Any]) -> str:
        if record.get("owner"):
            return str(record["owner"])
        owner = self.owners.resolve(rule=str(record.get("rule_id") or ""), agent=str(record.get("agent_id") or ""),
                                    tenant=str(record.get("tenant") or ""))
        return owner.team if owner else ""

    def _on_incident(self, tx: _Transaction, record: dict[str, Any]) -> list[Notification]:
        incident_id = str(record["incident_id"])
        known = tx.incident(incident_id)
        if known is not None and known[0].get("rule_id"):
            return []  # an update (count, last seen) of an incident already opened
        doc = {k: record.get(k) for k in ("tenant", "rule_id", "severity", "summary", "agent_id", "first_seen_us")}
        doc["team"] = self._team_of(record)
        # a lifecycle event may have come first (another topic): keep the state it folded
        status, reopens, level = known[1:] if known is not None else ("open", 0, 0)
        tx.save_incident(incident_id, doc, status, reopens, level)
        return self._notes(incident_id, doc, "opened", "opened/0", actor="", note="", level=0,
                           at_us=int(record.get("last_seen_us") or record["first_seen_us"]))

    def _on_lifecycle(self, tx: _Transaction, record: dict[str, Any]) -> list[Notification]:
        if not tx.first_time(str(record["event_id"])):
            return []
        kind = str(record["type"])
        if kind not in ("acknowledged", "resolved", "reopened", "escalated"):
            return []  # notified (ours), assigned, commented, opened: no state change to tell
        incident_id = str(record["incident_id"])
        known = tx.incident(incident_id)
        attributes = record.get("attributes") or {}
        if known is None:  # decided before this notifier saw the incident: what the event itself says
            doc = {"tenant": record.get("tenant") or "", "rule_id": "", "severity": "", "summary": "", "agent_id": "",
                   "first_seen_us": int(record["at_us"]),
                   "team": attributes.get("team") or self._team_of({"tenant": record.get("tenant")})}
            status, reopens, level = "open", 0, 0
        else:
            doc, status, reopens, level = known
        key = None
        if kind == "acknowledged" and status == "open":
            status, key = "acknowledged", f"acknowledged/{reopens}"
        elif kind == "resolved" and status != "resolved":
            status, key = "resolved", f"resolved/{reopens}"
        elif kind == "reopened" and status == "resolved":
            reopens += 1
            status, key = "open", f"reopened/{reopens}"
        elif kind == "escalated":
            new_level = int(attributes.get("level") or level + 1)
            if new_level > level:
                level, key = new_level, f"escalated/{new_level}"
        tx.save_incident(incident_id, doc, status, reopens, level)
        if key is None:
            return []
        actor = (record.get("actor") or {}).get("id", "")
        return self._notes(incident_id, doc, kind, key, actor=str(actor), note=str(record.get("note") or ""),
                           level=level, at_us=int(record["at_us"]))

    def _notes(self, incident_id: str, doc: dict[str, Any], state: str, key: str, *, actor: str, note: str,
               level: int, at_us: int) -> list[Notification]:
        link = deep_link(self.settings.dashboard_url, incident_id)
        return [Notification(
            incident_id=incident_id, state=state, key=key, route_id=route.id, tenant=str(doc.get("tenant") or ""),
            team=str(doc.get("team") or ""), rule_id=str(doc.get("rule_id") or ""),
            severity=str(doc.get("severity") or "medium"), summary=str(doc.get("summary") or ""),
            agent_id=str(doc.get("agent_id") or ""), actor=actor, note=note, level=level,
            first_seen_us=int(doc.get("first_seen_us") or at_us), at_us=at_us, link=link,
        ) for route in self.routes.for_team(str(doc.get("team") or ""))]

    # -- delivering ---------------------------------------------------------------------------

    def _wake_route(self, route_id: str, stop: threading.Event) -> None:
        event = self._wake.get(route_id)
        if event is None:
            route = self._routes_by_id.get(route_id)
            if route is None:
                _log.warning("notify.unknown_route", route=route_id, hint="gone from the owners file; its rows wait")
                return
            event = self._wake[route_id] = threading.Event()
            thread = threading.Thread(target=self._deliver_loop, args=(route, event, stop),
                                      name=f"notify-{route_id}", daemon=True)
            self._threads.append(thread)
            thread.start()
        event.set()

    def _deliver_loop(self, route: Any, wake: threading.Event, stop: threading.Event) -> None:
        backoff = self.settings.retry_initial_s
        while not stop.is_set():
            wake.clear()
            try:
                waiting = self._deliver_pending(route, stop)
            except Exception as exc:  # noqa: BLE001 - the loop outlives any one failure; rows stay pending
                _log.error("notify.delivery_loop_failed", route=route.id, error=exc)
                waiting = True
            if waiting:  # a receiver or the broker is away: rows stay in the outbox, try again later
                stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.retry_max_s)
                continue
            backoff = self.settings.retry_initial_s
            wake.wait(1.0)

    def _deliver_pending(self, route: Any, stop: threading.Event) -> bool:
        """Deliver and record this route's rows in order; True when one has to wait for a retry."""
        for seq, note, delivered in self.outbox.pending(route.id):
            if stop.is_set():
                return False
            if not delivered:
                try:
                    result = self.sender.send(route, note)
                except DeliveryError as exc:
                    if exc.retryable:
                        _log.warning("notify.retry_later", route=route.id, delivery=note.delivery_id, error=exc)
                        return True
                    _log.error("notify.refused", route=route.id, delivery=note.delivery_id, error=exc)
                    self.outbox.mark_delivered(seq, f"refused {exc.status}", self.settings.attempts)
                else:
                    self.latencies.append(time.time() - self.outbox.decided_at(seq))
                    self.outbox.mark_delivered(seq, f"delivered {result.status}", result.attempts)
                    _log.info("notify.delivered", route=route.id, delivery=note.delivery_id, status=result.status,
                              attempts=result.attempts)
            outcome, attempts = self.outbox.outcome(seq)
            if not self._record(route, note, outcome, attempts):
                return True
            self.outbox.mark_recorded(seq)
        return False

    def _notified(self, route: Any, note: Notification, outcome: str, attempts: int) -> tuple[bytes, Any]:
        """The framed ``notified`` event of a delivery and its signature headers (None without a key)."""
        from agentaudit.control.authority import sign_headers

        event = IncidentLifecycleEvent(
            event_id=str(uuid.uuid5(_NS, note.delivery_id)), incident_id=note.incident_id, tenant=note.tenant,
            type=LifecycleType.NOTIFIED, actor=Actor(type=ActorType.SYSTEM, id=NOTIFIER), at_us=time.time_ns() // 1000,
            attributes={"state": note.key, "route": route.id, "kind": route.kind, "team": note.team,
                        "outcome": outcome, "attempts": str(attempts)})
        value = self._lifecycle_codec.encode(event.to_avro())
        headers = sign_headers(self.key, "lifecycle", self.kafka.topics.lifecycle, value) if self.key else None
        return value, headers

    def _may_record(self) -> bool:
        """Whether readers with the authority would admit our ``notified`` events (an older authority file lacks
        the ``notify`` grant: each event would be refused as an integrity incident, which would be notified...)."""
        if self.authority is None:
            return True
        from agentaudit.control.admission import LIFECYCLE_ACTIONS

        probe = Notification("probe", "opened", "opened/0", "probe/0", "*", "", "", "", "", "", "", "", 0, 0, 0, "")
        value, headers = self._notified(type("R", (), {"id": "probe/0", "kind": "probe"})(), probe, "probe", 0)
        verdict = self.authority.check(purpose="lifecycle", topic=self.kafka.topics.lifecycle, value=value,
                                       headers=headers, action=LIFECYCLE_ACTIONS["notified"], tenant="*",
                                       issuer=f"system:{NOTIFIER}", at_us=time.time_ns() // 1000)
        if not verdict.ok:
            _log.error("notify.not_recording", reason=verdict.reason,
                       hint=f"deliveries are kept in the outbox only; grant system:{NOTIFIER} 'notify' (and let the "
                            f"service key sign for it) in {getattr(self.authority, 'source', 'the authority file')} "
                            "to record them as lifecycle events")
        return verdict.ok

    def _record(self, route: Any, note: Notification, outcome: str, attempts: int) -> bool:
        """Publish the ``notified`` lifecycle event of a delivery and wait for the broker; False if it is away."""
        if not self._recording:
            return True
        value, headers = self._notified(route, note, outcome, attempts)
        with self._produce_lock:
            try:
                self._producer.produce(self.kafka.topics.lifecycle, value, key=note.incident_id.encode(),
                                       headers=headers)
            except KafkaError as exc:
                _log.warning("notify.record_failed", delivery=note.delivery_id, error=exc)
                return False
            left = self._producer.flush(10.0)
        return left == 0
