"""Acknowledge, assign and resolve: the dashboard's only writes, as lifecycle events on Kafka.

Incident state is event-sourced: the dashboard publishes an :class:`IncidentLifecycleEvent` to the
lifecycle topic, keyed by incident id so an incident's events stay ordered, and the sink stores it
in ``incident_lifecycle``. The dashboard never writes incident state to ClickHouse.

>>> with LifecyclePublisher(KafkaSettings()) as publisher:
...     publisher.acknowledge("inc-1", tenant="acme", actor="alice", note="on it")
"""

from __future__ import annotations

import time
import uuid
from types import TracebackType

from agentaudit.control.authority import sign_headers
from agentaudit.dashboard.exceptions import AuthError, PublishError
from agentaudit.infra.kafka import KafkaError, KafkaProducer, Message
from agentaudit.schemas import Actor, ActorType, AvroCodec, IncidentLifecycleEvent, LifecycleType, SigningKey
from agentaudit.settings import KafkaSettings

__all__ = ["LifecyclePublisher"]


class LifecyclePublisher:
    """Publishes lifecycle events and waits until the broker has them.

    :param settings: broker and topic names (``AGENTAUDIT_BOOTSTRAP_SERVERS``, ``AGENTAUDIT_TOPIC_LIFECYCLE``).
    :param timeout: seconds to wait for the broker's acknowledgement, default 10.
    :param key: the dashboard's service key (``AGENTAUDIT_SERVICE_KEY_FILE``): each event is signed with it on
        behalf of the signed-in person it names (``human:<user>``). Default None: unsigned, which a consumer
        with an authority file refuses (and raises ``integrity.unauthorized-lifecycle``).
    """

    def __init__(self, settings: KafkaSettings, *, timeout: float = 10.0, key: SigningKey | None = None) -> None:
        self._settings = settings
        self._key = key
        self._topic = settings.topics.lifecycle
        self._timeout = timeout
        self._codec = AvroCodec("incident_lifecycle", max_message_bytes=settings.max_message_bytes,
                                schema_registry_url=settings.schema_registry_url, topic=self._topic)
        # acks=all + idempotence (the defaults) and a bounded delivery time: a click must not hang.
        self._producer = KafkaProducer(settings, {"message.timeout.ms": int(timeout * 1000)})

    @property
    def topic(self) -> str:
        """The lifecycle topic events go to."""
        return self._topic

    def publish(self, incident_id: str, kind: LifecycleType | str, *, actor: str, tenant: str = "",
                assignee: str | None = None, note: str | None = None,
                actor_type: ActorType = ActorType.HUMAN) -> IncidentLifecycleEvent:
        """Publish one event and return it once the broker acknowledged it.

        :raises AuthError: no actor name (nobody is signed in).
        :raises PublishError: the broker refused it or did not answer in time (``code`` kept).
        """
        if not actor:
            raise AuthError("sign in before acting on an incident: lifecycle events carry the actor's name")
        event = IncidentLifecycleEvent(
            event_id=str(uuid.uuid4()), incident_id=incident_id, tenant=tenant, type=LifecycleType(kind),
            actor=Actor(type=actor_type, id=actor), assignee=assignee or None, note=note or None,
            at_us=time.time_ns() // 1000, attributes={"source": "dashboard"},
        )
        failures: list[KafkaError] = []
        delivered: list[Message] = []

        def report(err: KafkaError | None, msg: Message) -> None:
            (failures.append(err) if err is not None else delivered.append(msg))

        try:
            value = self._codec.encode(event.to_avro())
            headers = sign_headers(self._key, "lifecycle", self._topic, value) if self._key is not None else None
            self._producer.produce(self._topic, value, key=incident_id.encode(), headers=headers, on_delivery=report)
            remaining = self._producer.flush(self._timeout)
        except KafkaError as exc:
            raise PublishError(f"publishing {event.type.value} of incident {incident_id} to topic {self._topic!r} "
                               f"failed: {exc}", code=exc.code) from exc
        if failures:
            raise PublishError(f"the broker refused {event.type.value} of incident {incident_id} on topic "
                               f"{self._topic!r}: {failures[0]}", code=failures[0].code) from failures[0]
        if remaining or not delivered:
            raise PublishError(f"{event.type.value} of incident {incident_id} was not acknowledged on topic "
                               f"{self._topic!r} within {self._timeout}s; check the broker "
                               f"({self._settings.bootstrap_servers})", code="_MSG_TIMED_OUT")
        return event

    def acknowledge(self, incident_id: str, *, actor: str, tenant: str = "", note: str | None = None) -> IncidentLifecycleEvent:
        """``acknowledged`` by ``actor``."""
        return self.publish(incident_id, LifecycleType.ACKNOWLEDGED, actor=actor, tenant=tenant, note=note)

    def assign(self, incident_id: str, assignee: str, *, actor: str, tenant: str = "",
               note: str | None = None) -> IncidentLifecycleEvent:
        """``assigned`` to a person or team by ``actor``."""
        if not assignee:
            raise PublishError(f"assigning incident {incident_id} needs an assignee (a person or a team)")
        return self.publish(incident_id, LifecycleType.ASSIGNED, actor=actor, tenant=tenant, assignee=assignee, note=note)

    def resolve(self, incident_id: str, *, actor: str, tenant: str = "", note: str | None = None) -> IncidentLifecycleEvent:
        """``resolved`` by ``actor``, with the note that explains how."""
        return self.publish(incident_id, LifecycleType.RESOLVED, actor=actor, tenant=tenant, note=note)

    def close(self) -> None:
        """Flush and release the producer."""
        try:
            self._producer.close(self._timeout)
        except KafkaError as exc:
            raise PublishError(f"closing the lifecycle publisher: {exc}", code=exc.code) from exc

    def __enter__(self) -> LifecyclePublisher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
