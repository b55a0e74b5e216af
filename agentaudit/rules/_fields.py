"""The event fields a condition may name, their types and how compiled code reads them.

Fields are the action record's, derived from its one definition (``agentaudit.schemas.ACTION_LEAVES``, read
from the Avro schema), plus a few computed ones.
Null strings read as ``""`` and null numbers as ``0`` (as in the ClickHouse columns),
so compiled conditions never meet ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentaudit.schemas import ACTION_LEAVES, ActionField

__all__ = ["FIELDS", "Field", "resolve_field", "schema_field"]


@dataclass(frozen=True, slots=True)
class Field:
    """One readable field: its type (str, num, enum, list, map) and a Python expression over ``r``."""

    name: str
    type: str
    code: str
    symbols: frozenset[str] = frozenset()
    doc: str = ""


_TYPES = {"string": "str", "int": "num", "long": "num", "double": "num", "enum": "enum", "array": "list", "map": "map"}


def schema_field(leaf: ActionField) -> Field:
    """The field for one leaf of the action schema: read by its path, a null as ``""`` or ``0``, and one added
    after version 1 with ``.get`` and its default, so that records of version 1 read as the default."""
    kind = _TYPES[leaf.type]
    code = f"r.get({leaf.name!r}, {leaf.default!r})" if leaf.since > 1 else "r" + "".join(f"[{k!r}]" for k in leaf.path)
    if leaf.nullable:
        code = f"({code} or {0 if kind == 'num' else repr('')})"
    return Field(leaf.name, kind, code, frozenset(leaf.symbols))


FIELDS: dict[str, Field] = {leaf.name: schema_field(leaf) for leaf in ACTION_LEAVES}
FIELDS.update({
    # computed
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
