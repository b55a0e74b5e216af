"""The event fields a condition may name, their types and how compiled code reads them.

Fields are the action record's (schemas/avro/action.v2.avsc) plus a few derived ones.
Null strings read as ``""`` and null numbers as ``0`` (as in the ClickHouse columns),
so compiled conditions never meet ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentaudit.schemas import ActionKind, ActorType, Phase, Status

__all__ = ["FIELDS", "Field", "resolve_field"]


@dataclass(frozen=True, slots=True)
class Field:
    """One readable field: its type (str, num, enum, list, map) and a Python expression over ``r``."""

    name: str
    type: str
    code: str
    symbols: frozenset[str] = frozenset()
    doc: str = ""


def _enum(name: str, code: str, enum: type) -> Field:
    return Field(name, "enum", code, frozenset(member.value for member in enum))


_STR = ("event_id", "tenant", "agent_id", "agent_version", "run_id", "trace_id", "action_id", "stream_id", "prev_hash", "name")
_NULLABLE_STR = ("parent_action_id", "error_type", "error_message", "model", "input_digest", "output_digest",
                 "input_body", "output_body")
_NUM = ("depth", "seq", "input_tokens", "output_tokens", "cost_usd", "start_time_us", "event_time_us", "payload_bytes")
_NULLABLE_NUM = ("latency_us", "end_time_us")

FIELDS: dict[str, Field] = {}
for _name in _STR:
    FIELDS[_name] = Field(_name, "str", f"r[{_name!r}]")
for _name in _NULLABLE_STR:
    FIELDS[_name] = Field(_name, "str", f"(r[{_name!r}] or '')")
for _name in _NUM:
    FIELDS[_name] = Field(_name, "num", f"r[{_name!r}]")
for _name in _NULLABLE_NUM:
    FIELDS[_name] = Field(_name, "num", f"(r[{_name!r}] or 0)")
FIELDS.update({
    "environment": Field("environment", "str", "r.get('environment', '')"),
    "kind": _enum("kind", "r['kind']", ActionKind),
    "phase": _enum("phase", "r['phase']", Phase),
    "status": _enum("status", "r['status']", Status),
    "actor_type": _enum("actor_type", "r['actor']['type']", ActorType),
    "actor_id": Field("actor_id", "str", "r['actor']['id']"),
    "links": Field("links", "list", "r['links']"),
    "attributes": Field("attributes", "map", "r['attributes']"),
    # derived
    "tokens_total": Field("tokens_total", "num", "(r['input_tokens'] + r['output_tokens'])",
                          doc="input_tokens + output_tokens"),
    "latency_ms": Field("latency_ms", "num", "((r['latency_us'] or 0) / 1000.0)", doc="latency_us / 1000"),
    "links_count": Field("links_count", "num", "len(r['links'])", doc="number of extra causal links"),
    "event_hash": Field("event_hash", "str", "r.get('event_hash', '')", doc="SHA-256 of the Avro body (set by the sink)"),
    # what identifies a call's arguments, so that identical calls can be grouped: the approval-bound args_hash
    # where the SDK set one, else the input digest, else the action's own id (no recorded arguments: like no other)
    "args_digest": Field("args_digest", "str",
                         "(r['attributes'].get('args_hash') or r['input_digest'] or r['action_id'])",
                         doc="attributes[\"args_hash\"] if set (calls bound to an approval), else input_digest, "
                             "else action_id"),
})
_ALIASES = {"actor.type": "actor_type", "actor.id": "actor_id"}


def resolve_field(name: str) -> Field | None:
    """The field called ``name`` (``actor.type`` is an alias of ``actor_type``), or None."""
    return FIELDS.get(_ALIASES.get(name, name))
