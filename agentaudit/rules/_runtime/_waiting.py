"""An event kept waiting for a later decision, with just what its incident will need."""

from __future__ import annotations

from typing import Any, NamedTuple

from agentaudit.rules._runtime._hits import Record

__all__ = ["Waiting"]


class Waiting(NamedTuple):
    """An event a runtime decides on later (a sequence's B, an absence's start): immutable, so a tuple."""

    t: int
    event_id: str
    rep: Record  # its slimmed fields, the incident's representative
    key: tuple[str, ...]  # the rule's key of it, tenant first

    def to_json(self) -> list[Any]:
        return [self.t, self.event_id, self.rep, list(self.key)]

    @classmethod
    def from_json(cls, data: list[Any]) -> Waiting:
        t, event_id, rep, key = data
        return cls(t, event_id, rep, tuple(key))
