"""Aggregates with ``window: trace``: one window per trace, closed by its root's end or by idleness."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentaudit.rules._runtime._base import trace_key
from agentaudit.rules._runtime._hits import AccKey, Clock, Record
from agentaudit.rules._runtime.aggregate import AggregateRuntime

if TYPE_CHECKING:
    from agentaudit.rules._compile import CompiledRule

__all__ = ["TraceAggregateRuntime", "TraceWindow"]


@dataclass(slots=True)
class TraceWindow:
    """What closes one trace's window: the last event time seen and the root's end; which accumulators it holds."""

    tenant: str
    last: int
    root_end: int | None = None
    accs: list[AccKey] = field(default_factory=list)

    def closes_at(self, idle: int) -> int:
        """The root's end once a counted event exists, else ``idle`` after the last event."""
        # a root end seen before any counted event (delivered out of order) is kept until idle after it
        return self.root_end if self.root_end is not None and self.accs else self.last + idle

    def to_json(self) -> list[Any]:
        return [self.tenant, self.last, self.root_end, [list(k) for k in self.accs]]

    @classmethod
    def from_json(cls, data: list[Any]) -> TraceWindow:
        tenant, last, root_end, accs = data
        return cls(tenant, last, root_end, [tuple(k) for k in accs])


class TraceAggregateRuntime(AggregateRuntime):
    """An aggregate with ``window: trace``: one window per trace (and ``by`` key), not per span of time.

    A trace's window closes when the tenant's watermark reaches the end of its root (an
    ``invoke_agent`` end with no parent), or, if no root end comes, the last event seen of the
    trace plus ``idle`` (the rule's ``window_us``; default 10 minutes; a trace is followed from its
    first counted event or its root's end, whichever comes first). So late events within the
    allowed lateness still count. Rising fns (count, sum, max, distinct with ``>``/``>=``) fire as
    soon as the threshold is crossed; the others when the window closes. An incident's identity
    is (rule, tenant, key with trace_id); it reports the trace's first and last matching event
    times as its window. An event of a trace whose window has closed starts a new count (late).
    """

    fusable = False  # every event is seen, to find the root's end

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        self.traces: dict[str, TraceWindow] = {}  # by trace_key
        self._value = rule.params.get("where") if rule.params["fn"] == "ratio" else rule.params.get("value")

    def feed(self, r: Record) -> None:
        rule = self.rule
        matched = rule.predicate(r)
        if matched:  # the risky steps first: a failure leaves no state changed
            key = rule.key(r)
            part_of, merge = self._part
            part = part_of(self._value, [r])
        root_end = r["kind"] == "invoke_agent" and r["phase"] == "end" and not r["parent_action_id"]
        if not (matched or root_end or self.traces):
            return  # nothing of this trace is counted yet: no state to keep
        tkey = trace_key(r)
        t = r["event_time_us"]
        trace = self.traces.get(tkey)
        if trace is None:
            if not (matched or root_end):
                return
            trace = self.traces[tkey] = TraceWindow(r["tenant"], t)
        elif t > trace.last:
            trace.last = t
        if root_end:
            trace.root_end = t
        if not matched:
            return
        hits = self.hits
        acc_key = (*key, 0)
        acc = hits.accs.get(acc_key)
        if acc is None:
            acc = hits.acc(key[0], key, 0)[1]
            trace.accs.append(acc_key)
        if acc.add_event(t, r["event_id"], r):
            acc.count += 1
            if merge is not None:
                merge(acc.values, part)
            if acc.raw is r:
                hits.held.append(acc)
        if acc.fired or (rule.params["eager"] and self.passes(acc)):
            acc.fired = True
            hits.touched.add(acc_key)

    def advance(self, clock: Clock) -> None:
        hits = self.hits
        idle = self.rule.window_us
        closed = [k for k, trace in self.traces.items() if trace.closes_at(idle) <= clock.of(trace.tenant)]
        for tkey in closed:
            for acc_key in self.traces.pop(tkey).accs:
                acc = hits.accs.pop(acc_key, None)
                if acc is None:
                    continue
                if not acc.fired and self.passes(acc):
                    acc.fired = True
                    hits.touched.add(acc_key)
                hits.retired[acc_key] = acc

    def state(self) -> Record:
        return {"accs": self.hits.state(), "traces": {k: w.to_json() for k, w in self.traces.items()}}

    def load(self, state: Record) -> None:
        super().load(state)
        self.traces = {k: TraceWindow.from_json(w) for k, w in state.get("traces", {}).items()}
