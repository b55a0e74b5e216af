"""The Python face of the event contract: immutable pydantic models mirroring the Avro schemas.

The Avro records (plain dicts) are the wire envelope; these models are the domain events.
Hot paths (SDK emit, decode, rules, sink) work on dicts and columns, and build models only
where a person or an API meets an event.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ActionEvent",
    "ActionKind",
    "Actor",
    "ActorType",
    "Incident",
    "IncidentLifecycleEvent",
    "IncidentState",
    "IncidentStatus",
    "LifecycleType",
    "Phase",
    "RuleMode",
    "Severity",
    "Status",
]


class ActionKind(StrEnum):
    """What happened; the first entries are the OpenTelemetry GenAI operation names."""

    INVOKE_AGENT = "invoke_agent"
    CREATE_AGENT = "create_agent"
    CHAT = "chat"
    TEXT_COMPLETION = "text_completion"
    EMBEDDINGS = "embeddings"
    EXECUTE_TOOL = "execute_tool"
    PLAN = "plan"
    HANDOFF = "handoff"
    APPROVAL = "approval"
    GUARDRAIL = "guardrail"
    DECISION = "decision"
    MESSAGE = "message"
    HUMAN_ACTION = "human_action"
    CONTROL = "control"
    OTHER = "other"


class Phase(StrEnum):
    START = "start"
    END = "end"
    POINT = "point"


class Status(StrEnum):
    UNSET = "unset"
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    DENIED = "denied"
    TIMEOUT = "timeout"


class ActorType(StrEnum):
    AGENT = "agent"
    HUMAN = "human"
    SYSTEM = "system"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class RuleMode(StrEnum):
    DETECT = "detect"
    SIMULATE = "simulate"
    ENFORCE = "enforce"


class LifecycleType(StrEnum):
    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    ESCALATED = "escalated"
    COMMENTED = "commented"
    NOTIFIED = "notified"  # a notification reached the owner's route; changes no state (v2 of the schema)


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


_FROZEN = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class _AvroModel(BaseModel):
    model_config = _FROZEN

    def to_avro(self) -> dict[str, Any]:
        """The record as the Avro codec expects it (enums as their symbols)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        """Validate a decoded Avro record; fields unknown to this version are ignored."""
        return cls.model_validate({k: v for k, v in record.items() if k in cls.model_fields})


class Actor(_AvroModel):
    """Who did it: an agent, a named human, or the system."""

    type: ActorType = ActorType.AGENT
    id: str


class ActionEvent(_AvroModel):
    """One thing an agent, a human or the system did (schemas/avro/action.v2.avsc; its fields in the order of
    :data:`~agentaudit.schemas.ACTION_FIELDS`, tests/unit/test_action_fields.py)."""

    event_id: str
    tenant: str
    agent_id: str
    agent_version: str = ""
    run_id: str
    trace_id: str
    action_id: str
    parent_action_id: str | None = None
    links: tuple[str, ...] = ()
    depth: int = Field(default=0, ge=0)
    stream_id: str
    seq: int = Field(ge=0)
    prev_hash: str = ""
    kind: ActionKind = ActionKind.OTHER
    name: str = ""
    phase: Phase = Phase.POINT
    status: Status = Status.UNSET
    error_type: str | None = None
    error_message: str | None = None
    actor: Actor
    model: str | None = None
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    latency_us: int | None = Field(default=None, ge=0)
    start_time_us: int
    end_time_us: int | None = None
    event_time_us: int
    input_digest: str | None = None
    output_digest: str | None = None
    input_body: str | None = None
    output_body: str | None = None
    payload_bytes: int = Field(default=0, ge=0)
    attributes: dict[str, str] = Field(default_factory=dict)
    environment: str = ""  # added in action.v2 (was missing here: from_avro dropped it)

    def to_avro(self) -> dict[str, Any]:
        record = self.model_dump(mode="json")
        record["links"] = list(self.links)
        return record


class Incident(_AvroModel):
    """A rule hit, as opened or updated by the rule engine (schemas/avro/incident.v1.avsc)."""

    incident_id: str
    tenant: str
    rule_id: str
    rule_revision: str
    severity: Severity = Severity.MEDIUM
    mode: RuleMode = RuleMode.DETECT
    owner: str = ""
    key: str = ""
    window_start_us: int = 0
    window_end_us: int = 0
    agent_id: str = ""
    trace_id: str = ""
    event_ids: tuple[str, ...] = ()
    first_seen_us: int
    last_seen_us: int
    count: int = Field(default=1, ge=1)
    summary: str = ""
    tags: tuple[str, ...] = ()
    attributes: dict[str, str] = Field(default_factory=dict)

    def to_avro(self) -> dict[str, Any]:
        record = self.model_dump(mode="json")
        record["event_ids"] = list(self.event_ids)
        record["tags"] = list(self.tags)
        return record


class IncidentLifecycleEvent(_AvroModel):
    """A change to an incident's state by a named actor (schemas/avro/incident_lifecycle.v1.avsc)."""

    event_id: str
    incident_id: str
    tenant: str = ""
    type: LifecycleType
    actor: Actor
    assignee: str | None = None
    note: str | None = None
    at_us: int
    attributes: dict[str, str] = Field(default_factory=dict)


class IncidentState(BaseModel):
    """An incident's current state: the fold of its lifecycle events, in order.

    >>> state = IncidentState.fold("inc-1", events)
    """

    model_config = ConfigDict(frozen=True)

    incident_id: str
    status: IncidentStatus = IncidentStatus.OPEN
    assignee: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at_us: int | None = None
    resolved_by: str | None = None
    resolved_at_us: int | None = None
    escalation_level: int = 0
    last_note: str | None = None
    history: tuple[IncidentLifecycleEvent, ...] = ()

    def apply(self, event: IncidentLifecycleEvent) -> IncidentState:
        """The state after ``event``; events of other incidents are a programming error."""
        if event.incident_id != self.incident_id:
            raise ValueError(f"lifecycle event {event.event_id} belongs to {event.incident_id}, not {self.incident_id}")
        changes: dict[str, Any] = {"history": (*self.history, event)}
        if event.note:
            changes["last_note"] = event.note
        match event.type:
            case LifecycleType.ACKNOWLEDGED:
                if self.status is IncidentStatus.OPEN:
                    changes["status"] = IncidentStatus.ACKNOWLEDGED
                changes["acknowledged_by"] = self.acknowledged_by or event.actor.id
                changes["acknowledged_at_us"] = self.acknowledged_at_us or event.at_us
            case LifecycleType.ASSIGNED:
                changes["assignee"] = event.assignee
            case LifecycleType.RESOLVED:
                changes["status"] = IncidentStatus.RESOLVED
                changes["resolved_by"] = event.actor.id
                changes["resolved_at_us"] = event.at_us
            case LifecycleType.REOPENED:
                changes.update(status=IncidentStatus.OPEN, resolved_by=None, resolved_at_us=None)
            case LifecycleType.ESCALATED:
                changes["escalation_level"] = self.escalation_level + 1
        return self.model_copy(update=changes)

    @classmethod
    def fold(cls, incident_id: str, events: list[IncidentLifecycleEvent]) -> IncidentState:
        """Fold events sorted by (at_us, event_id), so the order they arrived in does not matter."""
        state = cls(incident_id=incident_id)
        for event in sorted(events, key=lambda e: (e.at_us, e.event_id)):
            state = state.apply(event)
        return state
