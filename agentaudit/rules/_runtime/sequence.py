"""Sequence rules: A then B in one trace within T, optionally with no C between."""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentaudit.rules._runtime._base import RuleRuntime, heap_of, trace_key
from agentaudit.rules._runtime._hits import Clock, Pair, Record
from agentaudit.rules._runtime._waiting import Waiting

if TYPE_CHECKING:
    from agentaudit.rules._compile import CompiledRule

__all__ = ["SequenceRuntime", "SequenceTrace"]

Due = tuple[int, str, str]  # a B waiting for the watermark: (time, event id, trace key)


@dataclass(slots=True)
class SequenceTrace:
    """One trace's As, Bs and (with ``unless``) Cs, as (time, id) pairs in event order."""

    tenant: str
    last: int  # the largest event time seen: the trace is forgotten T after it
    as_: list[Pair] = field(default_factory=list)
    bs: list[Waiting] = field(default_factory=list)  # in arrival order
    cs: list[Pair] | None = None  # None without unless

    def to_json(self) -> Record:
        data: Record = {"tenant": self.tenant, "as": self.as_, "bs": [b.to_json() for b in self.bs],
                        "last": self.last}
        if self.cs is not None:
            data["cs"] = self.cs
        return data

    @classmethod
    def from_json(cls, data: Record) -> SequenceTrace:
        cs = data.get("cs")
        return cls(data["tenant"], data["last"], [(t, i) for t, i in data["as"]],
                   [Waiting.from_json(b) for b in data["bs"]], None if cs is None else [(t, i) for t, i in cs])


class SequenceRuntime(RuleRuntime):
    """A (condition) then B (``then``) in one trace within T, whatever order the two arrive in.

    Events are ordered by (event time, event id). With ``unless`` (C), a pair counts only when
    no C event of the same trace lies strictly between A and B in that order: a C cancels every
    A before it for every B after it. Then a B is decided when the tenant's watermark reaches
    its time (every A and C up to it, within the allowed lateness, has arrived), not on
    arrival, so a C that arrives after its B still cancels and incidents only ever grow.
    """

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        self.traces: dict[str, SequenceTrace] = {}
        self.unless = rule.params.get("unless")
        self.due: dict[str, list[Due]] = {}  # with unless, per tenant: heap of Bs

    def feed(self, r: Record) -> None:
        rule = self.rule
        is_a = rule.predicate(r)
        is_b = rule.params["then"](r)
        unless = self.unless
        is_c = unless is not None and unless(r)
        if not (is_a or is_b or is_c):
            return
        tkey = trace_key(r)
        trace = self.traces.get(tkey)
        t = r["event_time_us"]
        if trace is None:
            trace = self.traces[tkey] = SequenceTrace(r["tenant"], t, cs=[] if unless is not None else None)
        trace.last = max(trace.last, t)
        within = rule.params["within"]
        pair = (t, r["event_id"])
        if is_c and trace.cs is not None and pair not in trace.cs:
            insort(trace.cs, pair)
        if is_a and pair not in trace.as_:
            insort(trace.as_, pair)
            if unless is None:
                for b in trace.bs:
                    if pair < b[:2] and b.t - t <= within:
                        self.fire(b, [pair])
        if is_b:
            if any(b[:2] == pair for b in trace.bs):
                return
            stored = Waiting(t, r["event_id"], rule.slim(r), tuple(rule.key(r)))
            trace.bs.append(stored)
            if unless is not None:
                heapq.heappush(self.due.setdefault(r["tenant"], []), (t, r["event_id"], tkey))
                return
            qualifying = [a for a in trace.as_ if a < pair and t - a[0] <= within]
            if qualifying:
                self.fire(stored, qualifying)

    def decide(self, t: int, event_id: str, tkey: str) -> None:
        """With ``unless``: fire B when an A precedes it within T with no C after that A and before B."""
        trace = self.traces.get(tkey)
        if trace is None:
            return
        b_sk = (t, event_id)
        b = next((x for x in trace.bs if x[:2] == b_sk), None)
        if b is None:
            return
        cs = trace.cs or []
        i = bisect_left(cs, b_sk)
        after = cs[i - 1] if i else None  # the last C before B: only the As after it qualify
        within = self.rule.params["within"]
        qualifying = [a for a in trace.as_ if a < b_sk and t - a[0] <= within and (after is None or a >= after)]
        if qualifying:
            self.fire(b, qualifying)

    def fire(self, b: Waiting, as_: list[Pair]) -> None:
        self.hits.fire(b.key, b.t, b.event_id, b.rep, slim=True, extra=as_)

    def advance(self, clock: Clock) -> None:
        for tenant, heap in self.due.items():
            watermark = clock.of(tenant)
            while heap and heap[0][0] <= watermark:
                self.decide(*heapq.heappop(heap))
        within = self.rule.params["within"]
        for tkey in [k for k, tr in self.traces.items() if tr.last + within < clock.of(tr.tenant)]:
            del self.traces[tkey]
        super().advance(clock)

    def state(self) -> Record:
        state: Record = {"accs": self.hits.state(), "traces": {k: tr.to_json() for k, tr in self.traces.items()}}
        if self.unless is not None:
            state["due"] = self.due
        return state

    def load(self, state: Record) -> None:
        super().load(state)
        self.traces = {k: SequenceTrace.from_json(tr) for k, tr in state.get("traces", {}).items()}
        self.due = {tenant: heap_of(entries) for tenant, entries in state.get("due", {}).items()}

