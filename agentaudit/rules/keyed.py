"""One evaluator per key class: judges the copies a key-class router sent, each by its class's rules alone.

The rules worker routes every event once per key class that needs it (:class:`~.key_class.KeyRouter`)
and names the class on the copy (``"_key_class"`` in the record). A repartition partition thus
holds shards of several classes; this evaluator keeps a :class:`~.evaluator.RuleEvaluator` per
class, with that class's rules, and hands each one its own copies and every source marker, so
each class keeps the watermark and idleness guarantees of a single evaluator over source partitions.

>>> keyed = KeyedEvaluator(load_rule_set(None), sources=["actions:0", "actions:1"])
>>> keyed.evaluate([{**record, "_key_class": "trace_id", "_source": "actions:0"}])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from agentaudit.logs import get_logger
from agentaudit.rules.engine import BaseEvaluator
from agentaudit.rules.evaluator import DEFAULT_LATENESS_US, RuleEvaluator, read_snapshot
from agentaudit.rules.key_class import split_rule_set
from agentaudit.schemas import Incident, KeyRing

if TYPE_CHECKING:
    from agentaudit.rules._compile import RuleSet
    from agentaudit.rules.owners import OwnershipMap

__all__ = ["KEY_CLASS_FIELD", "KeyedEvaluator"]

_log = get_logger(__name__)
#: The record field naming the key class a copy was routed for.
KEY_CLASS_FIELD = "_key_class"
_SNAPSHOT_KIND = "keyed-1"


class KeyedEvaluator(BaseEvaluator):
    """A :class:`RuleEvaluator` per key class of ``rule_set``, fed the records routed to that class.

    :param rule_set: every rule; cut by :func:`~.key_class.split_rule_set` (each part keeps the revision).
    :param owners: as for :class:`RuleEvaluator`; default none.
    :param lateness_us: as for :class:`RuleEvaluator`; default 30 s.
    :param sources: every source partition (see :class:`RuleEvaluator`); each class evaluator takes its
        watermark over all of them, moved by the markers every class receives.
    :param keyring: as for :class:`RuleEvaluator`; default none.

    A record without ``"_key_class"`` (a copy written before key classes, re-keyed by tenant) goes to every
    class: it is the only copy of its event. Markers (``"_marker"``) go to every class, in their place.
    """

    def __init__(self, rule_set: RuleSet, owners: OwnershipMap | None = None,
                 lateness_us: int = DEFAULT_LATENESS_US, sources: Sequence[str] | None = None,
                 keyring: KeyRing | None = None) -> None:
        self.rule_set = rule_set
        self.revision = rule_set.revision
        self.owners = owners
        self.lateness_us = lateness_us
        self.keyring = keyring
        self.evaluators: dict[str, RuleEvaluator] = {
            name: RuleEvaluator(part, owners=owners, lateness_us=lateness_us, sources=sources, keyring=keyring)
            for name, part in split_rule_set(rule_set).items()}

    @property
    def watermark_us(self) -> int:
        """The least advanced class watermark (0 before any event)."""
        return min((ev.watermark_us for ev in self.evaluators.values()), default=0)

    def evaluate(self, records: Sequence[dict[str, Any]]) -> list[Incident]:
        evaluators = self.evaluators
        batches: dict[str, list[dict[str, Any]]] = {name: [] for name in evaluators}
        for r in records:
            name = r.get(KEY_CLASS_FIELD)
            if name is None:  # a marker, or a copy from before key classes: every class applies it
                for batch in batches.values():
                    batch.append(r)
            else:
                found = batches.get(name)
                if found is None:  # routed by an instance running other rules (a rollout): not ours to judge
                    _log.warning("rules.unknown_key_class", key_class=name, classes=sorted(evaluators),
                                 revision=self.revision, hint="run one rule revision per group")
                    continue
                found.append(r)
        incidents: list[Incident] = []
        for name, batch in batches.items():
            if batch:
                incidents.extend(evaluators[name].evaluate(batch))
        return incidents

    def on_watermark(self, watermark_us: int) -> list[Incident]:
        return [i for ev in self.evaluators.values() for i in ev.on_watermark(watermark_us)]

    def on_quiet(self, quiet_us: dict[str, int], others_us: int | None = None) -> list[Incident]:
        return [i for ev in self.evaluators.values() for i in ev.on_quiet(quiet_us, others_us)]

    def flush(self) -> list[Incident]:
        """Close every window of every class: the end of a finite replay."""
        return [i for ev in self.evaluators.values() for i in ev.flush()]

    def snapshot(self) -> bytes:
        """Each class evaluator's snapshot, under the revision (canonical JSON)."""
        classes = {name: ev.snapshot().decode() for name, ev in self.evaluators.items()}
        return orjson.dumps({"kind": _SNAPSHOT_KIND, "revision": self.revision, "classes": classes},
                            option=orjson.OPT_SORT_KEYS)

    def restore(self, data: bytes) -> None:
        """Load a :meth:`snapshot`; one of another revision or layout is ignored (state rebuilds from the log)."""
        state = read_snapshot(data, "key-class")
        if state is None:
            return
        if state.get("kind") != _SNAPSHOT_KIND or state.get("revision") != self.revision:
            _log.warning("rules.snapshot_skipped", revision=state.get("revision"), current=self.revision,
                         layout=state.get("kind", "per tenant"))
            return
        for name, ev in self.evaluators.items():
            saved = state["classes"].get(name)
            if saved is not None:
                ev.restore(saved.encode())
