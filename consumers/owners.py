"""Ownership at the store and broker edges: sync the owners map into ClickHouse, find agents seen,
and publish escalations of overdue incidents. The map itself is :mod:`agentaudit.rules.owners`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentaudit.rules.owners import OwnershipMap, due_escalations, load_owners
from agentaudit.schemas import (
    Actor,
    ActorType,
    Incident,
    IncidentLifecycleEvent,
    LifecycleType,
    Severity,
    SigningKey,
)

__all__ = ["agents_seen", "escalate_due", "open_incidents", "sync_owners"]

def agents_seen(store: Any, days: int) -> list[tuple[str, str]]:
    """``(tenant, agent_id)`` of every agent with an action in the last ``days`` days (``actions`` table)."""
    result = store.query(
        "SELECT DISTINCT tenant, agent_id FROM actions WHERE event_time >= now64(6) - toIntervalDay({days:UInt32}) "
        "ORDER BY tenant, agent_id", {"days": int(days)})
    return [(str(tenant), str(agent)) for tenant, agent in result.rows]


def open_incidents(store: Any) -> tuple[list[Incident], list[IncidentLifecycleEvent]]:
    """The latest version of every incident and all lifecycle events, read from ClickHouse."""
    incidents = [
        Incident(incident_id=row[0], tenant=row[1], rule_id=row[2], rule_revision=row[3], severity=Severity(row[4]),
                 owner=row[5], agent_id=row[6], first_seen_us=int(row[7]), last_seen_us=int(row[8]), count=max(1, row[9]))
        for row in store.query(
            "SELECT incident_id, tenant, rule_id, rule_revision, severity, owner, agent_id, "
            "toUnixTimestamp64Micro(first_seen), toUnixTimestamp64Micro(last_seen), count "
            "FROM incidents FINAL ORDER BY incident_id").rows
    ]
    lifecycle = [
        IncidentLifecycleEvent(event_id=row[0], incident_id=row[1], tenant=row[2], type=LifecycleType(row[3]),
                               actor=Actor(type=ActorType(row[4] or "system"), id=row[5]), assignee=row[6] or None,
                               note=row[7] or None, at_us=int(row[8]))
        for row in store.query(
            "SELECT event_id, incident_id, tenant, type, actor_type, actor_id, assignee, note, "
            "toUnixTimestamp64Micro(at) FROM incident_lifecycle FINAL ORDER BY incident_id, at, event_id").rows
    ]
    return incidents, lifecycle


def escalate_due(store: Any, producer: Any, topic: str, owners: OwnershipMap, now_us: int, *,
                 key: SigningKey | None = None) -> list[IncidentLifecycleEvent]:
    """Publish ``escalated`` lifecycle events for overdue unacknowledged incidents; returns them.

    :param producer: an ``agentaudit.infra.kafka.KafkaProducer``; events are keyed by incident id.
    :param topic: the lifecycle topic (``TopicNames.lifecycle``).
    :param key: the escalator's service key (``AGENTAUDIT_SERVICE_KEY_FILE``); each event is signed with it on
        behalf of its system actor. Default None: unsigned, which a consumer with an authority file refuses.
    """
    from agentaudit.control.authority import sign_headers
    from agentaudit.schemas import AvroCodec

    incidents, lifecycle = open_incidents(store)
    events = due_escalations(incidents, lifecycle, owners, now_us)
    codec = AvroCodec("incident_lifecycle")
    for event in events:
        value = codec.encode(event.to_avro())
        headers = sign_headers(key, "lifecycle", topic, value) if key is not None else None
        producer.produce(topic, value, key=event.incident_id.encode(), headers=headers)
    if events:
        producer.flush()
    return events


def sync_owners(settings: Any, path: str | Path) -> int:
    """Load an owners file and write its mapping to the ``owners`` table; returns the rows written.

    The table is a ReplacingMergeTree keyed by (subject_kind, pattern), so syncing again updates in place.
    """
    from agentaudit.infra.clickhouse import connect

    rows = load_owners(path).rows()
    if not rows:
        return 0
    columns = list(rows[0])
    with connect(settings) as store:
        store.insert_batch("owners", [[row[c] for c in columns] for row in rows], columns)
    return len(rows)
