"""Predicate rules: every matching event is an incident of its key and window."""

from __future__ import annotations

from agentaudit.rules._runtime._base import RuleRuntime, isolate
from agentaudit.rules._runtime._hits import Record

__all__ = ["PredicateRuntime"]


class PredicateRuntime(RuleRuntime):
    fusable = True

    def feed(self, r: Record) -> None:
        if self.rule.predicate(r):
            self.pending.append(r)

    def end_batch(self) -> None:
        pending = self.pending
        key = self.rule.key
        try:
            keys = [key(r) for r in pending]
        except Exception:  # noqa: BLE001 - one odd event: key them one by one, the failing ones alone
            pending[:], keys = isolate(pending, key, self.failures)
        hit = self.hits.hit
        for r, k in zip(pending, keys, strict=False):
            hit(r, k, r["event_time_us"])
        pending.clear()
