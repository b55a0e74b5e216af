"""Absence rules: a started action with no end within T."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from agentaudit.rules._runtime._base import RuleRuntime, heap_of, human_duration
from agentaudit.rules._runtime._hits import NEVER, Clock, Record
from agentaudit.rules._runtime._waiting import Waiting

if TYPE_CHECKING:
    from agentaudit.rules._compile import CompiledRule

__all__ = ["AbsenceRuntime"]


class AbsenceRuntime(RuleRuntime):
    """A started action (condition) with no end (``end``, same action_id) within T of its start.

    A start is decided when the watermark passes its deadline (start + T), which for starts late
    in a window is after the window's end; so a window's accumulator stays until the watermark
    passes its end + T, the last deadline of a start inside it. Every hung start of a key and
    window thus adds to one incident whose count only grows (the incidents table keeps the row
    with the largest count), instead of a later decision restarting the count under the same id.
    """

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        self.started: dict[str, Waiting] = {}  # by action_id: starts with no end yet
        self.deadlines: dict[str, list[tuple[int, str]]] = {}  # per tenant: heap of (deadline, action_id)

    def feed(self, r: Record) -> None:
        rule = self.rule
        aid = r["action_id"]
        started = self.started.get(aid)
        if started is not None and rule.params["end"](r):
            if r["event_time_us"] - started.t <= rule.params["within"]:
                del self.started[aid]
            return
        if rule.predicate(r):
            if started is not None:
                return
            t = r["event_time_us"]
            self.started[aid] = Waiting(t, r["event_id"], rule.slim(r), tuple(rule.key(r)))
            heapq.heappush(self.deadlines.setdefault(r["tenant"], []), (t + rule.params["within"], aid))

    def advance(self, clock: Clock) -> None:
        for tenant, heap in self.deadlines.items():
            watermark = clock.of(tenant)
            while heap and heap[0][0] <= watermark:
                self.decide(heapq.heappop(heap)[1])
        within = self.rule.params["within"]  # windows close T after their end: see the class docstring
        default = clock.default - within if clock.default != NEVER else NEVER
        self.hits.evict(Clock({tenant: mark - within for tenant, mark in clock.items()}, default=default))

    def decide(self, aid: str) -> None:
        start = self.started.pop(aid, None)
        if start is not None:
            self.hits.fire(start.key, start.t, start.event_id, start.rep, slim=True,
                           values={"within": human_duration(self.rule.params["within"])})

    def state(self) -> Record:
        return {"accs": self.hits.state(), "pending": {aid: w.to_json() for aid, w in self.started.items()},
                "deadlines": self.deadlines}

    def load(self, state: Record) -> None:
        super().load(state)
        self.started = {aid: Waiting.from_json(w) for aid, w in state.get("pending", {}).items()}
        self.deadlines = {tenant: heap_of(entries) for tenant, entries in state.get("deadlines", {}).items()}
