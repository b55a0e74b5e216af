"""``notified`` lifecycle events (incident_lifecycle v2) next to the v1 data already written."""

from __future__ import annotations

import uuid

from agentaudit.schemas import AvroCodec, IncidentLifecycleEvent, IncidentState, IncidentStatus, LifecycleType


def _record(kind: str) -> dict:
    return {"event_id": str(uuid.uuid4()), "incident_id": "inc-1", "tenant": "acme", "type": kind,
            "actor": {"type": "system", "id": "agentaudit-notifier"}, "assignee": None, "note": None,
            "at_us": 1_700_000_000_000_000, "attributes": {"state": "opened/0", "route": "payments/0"}}


def test_v1_records_read_as_before_and_v2_writes_notified() -> None:
    v1, v2 = AvroCodec("incident_lifecycle", version=1), AvroCodec("incident_lifecycle")
    assert v2.schema.version == 2
    old = _record("resolved")
    assert v2.decode(v1.encode(old)) == old  # stored v1 messages stay readable
    assert v2.decode(v2.encode(_record("notified")))["type"] == "notified"


def test_a_v1_reader_reads_notified_as_its_enum_default() -> None:
    v1, v2 = AvroCodec("incident_lifecycle", version=1), AvroCodec("incident_lifecycle")
    assert v1.decode(v2.encode(_record("notified")))["type"] == "commented"


def test_notified_changes_no_incident_state() -> None:
    events = [IncidentLifecycleEvent.from_avro({**_record(kind), "at_us": 1_700_000_000_000_000 + i})
              for i, kind in enumerate(["acknowledged", "notified", "notified"])]
    state = IncidentState.fold("inc-1", events)
    assert state.status is IncidentStatus.ACKNOWLEDGED and state.escalation_level == 0 and state.last_note is None
    assert [e.type for e in state.history] == [LifecycleType.ACKNOWLEDGED, LifecycleType.NOTIFIED,
                                               LifecycleType.NOTIFIED]
