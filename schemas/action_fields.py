"""The action record's fields, read once from its Avro schema: the one definition the rest derive from.

The Avro schema (``avro/action.v<latest>.avsc``) is the contract on the wire; the pydantic
:class:`~agentaudit.schemas.ActionEvent` mirrors it. The SDK's worker builds its records from
:data:`ACTION_DEFAULTS`, the sink's Arrow columns and the rule engine's condition fields are
derived from :data:`ACTION_LEAVES`, so a field added to the schema reaches all three
(tests/unit/test_action_fields.py). Everything here is computed at import, never per event.

>>> [f.name for f in ACTION_FIELDS][:3]
['event_id', 'tenant', 'agent_id']
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

from agentaudit.schemas import registry

__all__ = ["ACTION_DEFAULTS", "ACTION_FIELDS", "ACTION_FIELD_NAMES", "ACTION_LEAVES", "ActionField", "AvroType",
           "action_fields"]

AvroType = Literal["string", "int", "long", "double", "boolean", "enum", "array", "map", "record"]
_NO_DEFAULT: Any = object()


@dataclass(frozen=True, slots=True)
class ActionField:
    """One field of the action record.

    :param type: the Avro type, with a ``["null", T]`` union read as ``T``.
    :param nullable: the field is such a union.
    :param default: the schema's default; :attr:`has_default` says whether there is one.
    :param symbols: an enum's symbols, in schema order.
    :param fields: a nested record's own fields (``actor``: ``type``, ``id``).
    :param path: the keys that read it from a decoded record: ``("actor", "type")`` for the leaf ``actor_type``.
    :param since: the first schema version with this field (1 for the original ones).
    """

    name: str
    type: AvroType
    nullable: bool = False
    default: Any = _NO_DEFAULT
    symbols: tuple[str, ...] = ()
    fields: tuple[ActionField, ...] = ()
    path: tuple[str, ...] = ()
    since: int = 1

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT


def _field(raw: dict[str, Any]) -> ActionField:
    # Names are interned, as the literal keys in code are: a dict lookup with an equal but distinct string
    # compares the characters, and the sink's pivot reads every field of every record by these names.
    raw = {**raw, "name": sys.intern(raw["name"])}
    kind = raw["type"]
    nullable = isinstance(kind, list)
    if nullable:
        branches = [t for t in kind if t != "null"]
        if len(branches) != 1 or kind[0] != "null":
            raise ValueError(f"field {raw['name']!r}: only a [\"null\", T] union is supported, got {kind!r}")
        kind = branches[0]
    default = raw.get("default", _NO_DEFAULT)
    if isinstance(kind, str):
        return ActionField(raw["name"], kind, nullable, default)  # type: ignore[arg-type]  # a primitive name
    complex_type = kind["type"]
    if complex_type == "enum":
        return ActionField(raw["name"], "enum", nullable, default, tuple(kind["symbols"]))
    if complex_type == "record":
        return ActionField(raw["name"], "record", nullable, default, fields=tuple(_field(f) for f in kind["fields"]))
    return ActionField(raw["name"], complex_type, nullable, default)


def action_fields(schema: dict[str, Any]) -> tuple[ActionField, ...]:
    """The fields of an action schema (its parsed JSON), in schema order."""
    return tuple(_field(f) for f in schema["fields"])


def _latest() -> tuple[ActionField, ...]:
    latest = registry.latest("action")
    since: dict[str, int] = {}
    for version in range(latest.version, 0, -1):
        for name in (f["name"] for f in registry.load("action", version).raw["fields"]):
            since[name] = version
    return tuple(replace(f, path=(f.name,), since=since[f.name]) for f in action_fields(latest.raw))


def _leaves(fields: tuple[ActionField, ...]) -> tuple[ActionField, ...]:
    return tuple(leaf for f in fields for leaf in (
        [replace(sub, name=sys.intern(f"{f.name}_{sub.name}"), path=(f.name, sub.name), since=f.since)
         for sub in f.fields]
        if f.type == "record" else [f]))


#: The latest action schema's fields, in schema order.
ACTION_FIELDS: tuple[ActionField, ...] = _latest()
#: The same with each nested record replaced by its leaves (``actor`` by ``actor_type`` and ``actor_id``):
#: the flat names the store's columns and the rules' conditions use.
ACTION_LEAVES: tuple[ActionField, ...] = _leaves(ACTION_FIELDS)
ACTION_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in ACTION_FIELDS)
#: The fields with a default and that default. A list or dict default is shared: copy it before changing it
#: (the SDK's worker sets ``links`` and ``attributes`` afresh for each event).
ACTION_DEFAULTS: MappingProxyType[str, Any] = MappingProxyType(
    {f.name: f.default for f in ACTION_FIELDS if f.has_default})
