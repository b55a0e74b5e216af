"""Ancestor rules: a consequential action needs an approval earlier in its causal chain."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from agentaudit.rules._runtime._base import RuleRuntime, human_duration, trace_key
from agentaudit.rules._runtime._hits import Clock, Record

if TYPE_CHECKING:
    from agentaudit.rules._compile import CompiledRule

__all__ = ["EXPIRES_ATTRIBUTE", "AncestorRuntime", "AncestorTrace", "Approval", "Consequential"]

EXPIRES_ATTRIBUTE = "expires_at_us"  # an approval's expiry, epoch microseconds (agentaudit.control.approvals)


class Approval(NamedTuple):
    """An approval event of a trace; ``bound``/``expires`` only with ``bind``."""

    t: int
    event_id: str
    action_id: str
    parent: str  # its parent action id, "" at the root
    bound: list[str] | None = None  # its values of the bind attributes
    expires: int | None = None  # its expiry (see _expiry)

    def to_json(self) -> list[Any]:
        return list(self) if self.bound is not None else list(self[:4])


class Consequential(NamedTuple):
    """An action waiting for the watermark to be judged; ordered by (time, event id) in a tenant's heap."""

    t: int
    event_id: str
    tkey: str
    action_id: str
    parent: str
    links: list[str]
    rep: Record
    key: tuple[str, ...]
    bound: list[str] | None = None  # with bind: its values of the bind attributes

    def to_json(self) -> list[Any]:
        data = [self.t, self.event_id, self.tkey, self.action_id, self.parent, self.links, self.rep, list(self.key)]
        if self.bound is not None:
            data.append(self.bound)
        return data

    @classmethod
    def from_json(cls, data: list[Any]) -> Consequential:
        t, event_id, tkey, action_id, parent, links, rep, key = data[:8]
        return cls(t, event_id, tkey, action_id, parent, links, rep, tuple(key), data[8] if len(data) > 8 else None)


@dataclass(slots=True)
class AncestorTrace:
    """One trace's causal links (action -> parent), its approvals, and which approvals ``once`` used up."""

    tenant: str
    last: int
    parents: dict[str, str] = field(default_factory=dict)
    approvals: list[Approval] = field(default_factory=list)
    used: list[str] | None = None  # event ids of used approvals; None until one is used

    def to_json(self) -> Record:
        data: Record = {"tenant": self.tenant, "parents": self.parents,
                        "approvals": [ap.to_json() for ap in self.approvals], "last": self.last}
        if self.used is not None:
            data["used"] = self.used
        return data

    @classmethod
    def from_json(cls, data: Record) -> AncestorTrace:
        return cls(data["tenant"], data["last"], data["parents"], [Approval(*ap) for ap in data["approvals"]],
                   data.get("used"))


_NO_TRACE = AncestorTrace("", 0)  # a forgotten trace: no links, no approvals (never written to)


class AncestorRuntime(RuleRuntime):
    """A consequential action (condition) needs an approval earlier in its causal chain, within T.

    An approval counts when it is an ancestor of the action, a child of one of its ancestors
    (asked for by a step of the chain), a sibling, or named in the action's ``links``. The
    check runs when the watermark passes the action's time, so late approvals (within the
    allowed lateness) are still seen.

    With ``bind`` (attribute names, e.g. ``args_hash``), an approval counts only when it carries
    each of those attributes, non-empty and equal to the action's own, and, when it has an
    ``expires_at_us`` attribute, the action happened before that time: an approval of
    arguments A never covers arguments B, and an expired approval covers nothing.

    With ``once``, each approval covers at most one action. Actions are decided in (event time,
    event id) order per tenant, as the watermark passes them, and each uses up the earliest
    unused approval that covers it; so the same events give the same incidents whatever the
    batch boundaries. The used approvals' event ids are kept with the trace (and snapshotted).
    """

    def __init__(self, rule: CompiledRule) -> None:
        super().__init__(rule)
        self.traces: dict[str, AncestorTrace] = {}
        self.due: dict[str, list[Consequential]] = {}  # per tenant: heap of actions waiting for the watermark
        self.bind: tuple[str, ...] = rule.params.get("bind") or ()
        self.once: bool = rule.params.get("once", False)

    def _bound(self, r: Record) -> list[str]:
        attrs = r.get("attributes") or {}
        return [str(attrs.get(name) or "") for name in self.bind]

    def feed(self, r: Record) -> None:
        rule = self.rule
        tkey = trace_key(r)
        t = r["event_time_us"]
        trace = self.traces.get(tkey)
        if trace is None:
            trace = self.traces[tkey] = AncestorTrace(r["tenant"], t)
        trace.last = max(trace.last, t)
        parent = r["parent_action_id"] or ""
        trace.parents[r["action_id"]] = parent
        if rule.params["approval"](r):
            if self.bind:
                approval = Approval(t, r["event_id"], r["action_id"], parent, self._bound(r),
                                    _expiry((r.get("attributes") or {}).get(EXPIRES_ATTRIBUTE)))
            else:
                approval = Approval(t, r["event_id"], r["action_id"], parent)
            if approval not in trace.approvals:
                trace.approvals.append(approval)
        if rule.predicate(r):
            due = Consequential(t, r["event_id"], tkey, r["action_id"], parent, list(r["links"]), rule.slim(r),
                                tuple(rule.key(r)), self._bound(r) if self.bind else None)
            heapq.heappush(self.due.setdefault(r["tenant"], []), due)

    def advance(self, clock: Clock) -> None:
        within = self.rule.params["within"]
        for tenant, heap in self.due.items():
            watermark = clock.of(tenant)
            while heap and heap[0][0] <= watermark:
                self.decide(heapq.heappop(heap), within)
        waiting = {entry.tkey for heap in self.due.values() for entry in heap}
        for tkey in [k for k, tr in self.traces.items() if tr.last < clock.of(tr.tenant) - within]:
            if tkey not in waiting:
                del self.traces[tkey]
        super().advance(clock)

    def decide(self, action: Consequential, within: int) -> None:
        t, aid, parent = action.t, action.action_id, action.parent
        trace = self.traces.get(action.tkey, _NO_TRACE)
        chain: set[str] = set()
        node = parent
        while node and node not in chain:
            chain.add(node)
            node = trace.parents.get(node, "")
        related = [
            ap for ap in trace.approvals
            if ap.t <= t and t - ap.t <= within and ap.action_id != aid
            and (ap.action_id in chain or (ap.parent and ap.parent in chain) or ap.parent == parent
                 or ap.action_id in action.links)
        ]
        detail = "no approval in its chain"
        once = self.once
        if related and not self.bind:
            if not once:
                return
            if self._use(trace, related):
                return
            detail = "every approval in its chain was already used by an earlier action (once: true)"
        elif related:
            wanted = action.bound if action.bound is not None else [""] * len(self.bind)
            names = ", ".join(self.bind)
            if not all(wanted):
                detail = f"the action carries no {names} to bind an approval to"
            else:
                matching = [ap for ap in related if ap.bound is not None and ap.bound == wanted]
                valid = [ap for ap in matching if ap.expires is None or t < ap.expires]
                if valid and (not once or self._use(trace, valid)):
                    return
                detail = ("every matching approval was already used by an earlier action (once: true)" if valid
                          else f"the approval had expired (or has a bad {EXPIRES_ATTRIBUTE})" if matching
                          else f"approved {names} differs from the action's")
        self.hits.fire(action.key, t, action.event_id, action.rep, slim=True,
                       values={"within": human_duration(within), "detail": detail})

    @staticmethod
    def _use(trace: AncestorTrace, covering: list[Approval]) -> bool:
        """Use up the earliest (time, event id) of ``covering`` not yet used; False if all were."""
        if trace is _NO_TRACE:
            return False  # unreachable: a forgotten trace has no approvals to cover with
        if trace.used is None:
            trace.used = []
        used = trace.used
        free = [ap for ap in covering if ap.event_id not in used]
        if not free:
            return False
        used.append(min(free, key=lambda ap: (ap.t, ap.event_id)).event_id)
        return True

    def state(self) -> Record:
        return {"accs": self.hits.state(), "traces": {k: tr.to_json() for k, tr in self.traces.items()},
                "due": {tenant: [c.to_json() for c in heap] for tenant, heap in self.due.items()}}

    def load(self, state: Record) -> None:
        super().load(state)
        self.traces = {k: AncestorTrace.from_json(tr) for k, tr in state.get("traces", {}).items()}
        self.due = {}
        for tenant, heap in state.get("due", {}).items():
            self.due[tenant] = [Consequential.from_json(c) for c in heap]
            heapq.heapify(self.due[tenant])


def _expiry(value: Any) -> int | None:
    """An approval's expiry; None when it has none, 0 (always expired) when it is not a number."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
